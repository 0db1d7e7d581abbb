"""Line charts as standalone SVG, Python standard library only.

line_chart() draws each series as median points joined by lines, with a vertical whisker from
min to max where a series gives them; linear or log10 axes.
"""
import math
from xml.sax.saxutils import escape

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#17becf", "#bcbd22"]
DASHES = ["", "6,3", "2,3", "8,3,2,3"]


def _nice_ticks(lo, hi, n=5):
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _log_ticks(lo, hi):
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks = []
    for e in range(a, b + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo / 1.0001 <= v <= hi * 1.0001:
                ticks.append(v)
    if len(ticks) < 2:
        ticks = [lo, hi]
    return ticks


def _fmt(v):
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:g}G"
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    if a >= 1:
        return f"{v:g}"
    return f"{v:.3g}"


def line_chart(title, xlabel, ylabel, series, logx=False, logy=False, width=860, height=440,
               note=None, xticks=None):
    """series: [{"name": str, "points": [(x, median, lo, hi), ...]}] (lo/hi may be None)."""
    ml, mr, mt, mb = 78, 270, 40, 58 + (16 if note else 0)
    pw, ph = width - ml - mr, height - mt - mb
    pts = [p for s in series for p in s["points"] if p[1] is not None]
    if not pts:
        return _empty(title, width, height)
    xs = [p[0] for p in pts]
    ys = [v for p in pts for v in (p[1], p[2], p[3]) if v is not None]
    if logy:
        ys = [y for y in ys if y > 0] or [1.0]
    xlo, xhi = min(xs), max(xs)
    ylo, yhi = (min(ys), max(ys))
    if logx:
        xlo, xhi = xlo / 1.15, xhi * 1.15
    else:
        pad = (xhi - xlo) * 0.05 or 0.5
        xlo, xhi = xlo - pad, xhi + pad
    if logy:
        ylo, yhi = ylo / 1.3, yhi * 1.3
        yt = _log_ticks(ylo, yhi)
    else:
        ylo = 0.0 if ylo >= 0 else ylo * 1.1
        yhi = yhi * 1.08 if yhi > 0 else 1.0
        yt = _nice_ticks(ylo, yhi)
        yhi = max(yhi, yt[-1])
    xt = xticks or (_log_ticks(xlo, xhi) if logx else _nice_ticks(xlo, xhi))

    def fx(x):
        if logx:
            return ml + (math.log10(x) - math.log10(xlo)) / (math.log10(xhi) - math.log10(xlo)) * pw
        return ml + (x - xlo) / (xhi - xlo) * pw

    def fy(y):
        if logy:
            y = max(y, ylo)
            return mt + ph - (math.log10(y) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo)) * ph
        return mt + ph - (y - ylo) / (yhi - ylo) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{ml + pw / 2}" y="22" text-anchor="middle" font-size="15" '
           f'font-weight="bold">{escape(title)}</text>']
    for t in yt:
        if ylo <= t <= yhi:
            y = fy(t)
            out.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" stroke="#e4e4e4"/>')
            out.append(f'<text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for t in xt:
        if xlo <= t <= xhi:
            x = fx(t)
            out.append(f'<line x1="{x:.1f}" y1="{mt}" x2="{x:.1f}" y2="{mt + ph}" stroke="#f0f0f0"/>')
            out.append(f'<text x="{x:.1f}" y="{mt + ph + 16}" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    out.append(f'<text x="{ml + pw / 2}" y="{mt + ph + 38}" text-anchor="middle">{escape(xlabel)}</text>')
    out.append(f'<text x="18" y="{mt + ph / 2}" text-anchor="middle" '
               f'transform="rotate(-90 18 {mt + ph / 2})">{escape(ylabel)}</text>')
    if note:
        out.append(f'<text x="{ml}" y="{height - 8}" font-size="11" fill="#555">{escape(note)}</text>')
    for i, s in enumerate(series):
        c = COLORS[i % len(COLORS)]
        dash = DASHES[(i // len(COLORS) + (1 if s.get("dashed") else 0)) % len(DASHES)]
        p = sorted((q for q in s["points"] if q[1] is not None and (not logy or q[1] > 0)),
                   key=lambda q: q[0])
        if not p:
            continue
        path = " ".join(f"{'M' if j == 0 else 'L'}{fx(q[0]):.1f},{fy(q[1]):.1f}" for j, q in enumerate(p))
        da = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<path d="{path}" fill="none" stroke="{c}" stroke-width="2"{da}/>')
        for q in p:
            x, y = fx(q[0]), fy(q[1])
            if q[2] is not None and q[3] is not None:
                out.append(f'<line x1="{x:.1f}" y1="{fy(q[2]):.1f}" x2="{x:.1f}" y2="{fy(q[3]):.1f}" '
                           f'stroke="{c}" stroke-width="1.2"/>')
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="{c}"/>')
        ly = mt + 14 + i * 18
        out.append(f'<line x1="{ml + pw + 12}" y1="{ly - 4}" x2="{ml + pw + 34}" y2="{ly - 4}" '
                   f'stroke="{c}" stroke-width="2"{da}/>')
        out.append(f'<text x="{ml + pw + 40}" y="{ly}">{escape(s["name"])}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _empty(title, width, height):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
            f'<text x="20" y="30">{escape(title)}: no data</text></svg>\n')
