// Peer: MPI_Allreduce (SUM, MPI_FLOAT, in place) of N floats over all ranks.
// Same protocol and JSON shape as torch_allreduce.py: per size, --warmup untimed calls then
// --reps timed calls; each call starts after a barrier, its time is the slowest rank's; the
// buffer is refilled with 1.0 before every call (untimed) and the result checked.
// Build: mpicxx -O2 -std=c++17 -DOMPI_SKIP_MPICXX=1 -o mpi_allreduce mpi_allreduce.cc   (or: make)
// Run:   mpirun --allow-run-as-root --oversubscribe -np 4 ./mpi_allreduce --floats 1048576,16777216
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Args {
  std::vector<long> floats{16777216};
  int reps = 10;
  int warmup = 2;
  std::string tag;  // e.g. the transport, copied into the JSON as "transport"
};

const char kUsage[] =
    "usage: mpirun -np W mpi_allreduce [--floats N[,N...]] [--reps R] [--warmup K] [--tag T]\n"
    "  MPI_Allreduce (SUM, float, in place) of N floats; defaults: --floats 16777216\n"
    "  --reps 10 --warmup 2. Prints one JSON line (rank 0). --tag T adds \"transport\":\"T\".\n";

bool Parse(int argc, char** argv, Args* a) {
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--help" || k == "-h") return false;
    if (i + 1 >= argc) return false;
    std::string v = argv[++i];
    if (k == "--floats") {
      a->floats.clear();
      for (size_t p = 0; p < v.size();) {
        size_t q = v.find(',', p);
        if (q == std::string::npos) q = v.size();
        long n = std::strtol(v.substr(p, q - p).c_str(), nullptr, 10);
        if (n <= 0) return false;
        a->floats.push_back(n);
        p = q + 1;
      }
    } else if (k == "--reps") {
      a->reps = std::atoi(v.c_str());
    } else if (k == "--warmup") {
      a->warmup = std::atoi(v.c_str());
    } else if (k == "--tag") {
      a->tag = v;
    } else {
      return false;
    }
  }
  return a->reps > 0 && a->warmup >= 0 && !a->floats.empty();
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, world = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  Args a;
  if (!Parse(argc, argv, &a)) {
    if (rank == 0) std::fputs(kUsage, stdout);
    MPI_Finalize();
    return 0;
  }
  std::string out = "{\"program\": \"mpi_allreduce\", ";
  if (!a.tag.empty()) out += "\"transport\": \"" + a.tag + "\", ";
  out += "\"world\": " + std::to_string(world) + ", \"warmup\": " + std::to_string(a.warmup) +
         ", \"reps\": " + std::to_string(a.reps) + ", \"results\": [";
  for (size_t s = 0; s < a.floats.size(); ++s) {
    const long n = a.floats[s];
    std::vector<float> x(n);
    std::vector<double> times;
    for (int rep = 0; rep < a.warmup + a.reps; ++rep) {
      std::fill(x.begin(), x.end(), 1.0f);
      MPI_Barrier(MPI_COMM_WORLD);
      double t = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, x.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM,
                    MPI_COMM_WORLD);
      t = MPI_Wtime() - t;
      MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);  // slowest rank
      if (x[0] != world || x[n - 1] != world) {
        std::fprintf(stderr, "rank %d: wrong MPI_Allreduce result %g\n", rank, x[0]);
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
      if (rep >= a.warmup) times.push_back(t);
    }
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    const size_t m = sorted.size();
    const double med = m % 2 ? sorted[m / 2] : (sorted[m / 2 - 1] + sorted[m / 2]) / 2;
    const double bytes = 4.0 * n;
    const double algbw = bytes / med / 1e9;
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "%s{\"floats\": %ld, \"bytes\": %.0f, \"min_s\": %.6g, \"median_s\": %.6g, "
                  "\"max_s\": %.6g, \"algbw_GBps\": %.4f, \"algbw_best_GBps\": %.4f, "
                  "\"busbw_GBps\": %.4f}",
                  s ? ", " : "", n, bytes, sorted.front(), med, sorted.back(), algbw,
                  bytes / sorted.front() / 1e9, algbw * 2.0 * (world - 1) / world);
    out += buf;
  }
  out += "]}";
  if (rank == 0) std::printf("%s\n", out.c_str());
  MPI_Finalize();
  return 0;
}
