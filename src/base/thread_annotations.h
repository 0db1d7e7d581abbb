// Thread-safety annotations: macros over clang's -Wthread-safety attributes,
// so the compiler checks which mutex guards which member instead of a
// comment saying so. They expand to nothing on other compilers (GCC builds
// the release binaries; the `tsa` preset builds with clang to check). Stateless.
//
//   class Account {  // Mutex and MutexLock: base/mutex.h
//     void Deposit(int n) EXCLUDES(mu_) { MutexLock lock(&mu_); AddLocked(n); }
//     void AddLocked(int n) REQUIRES(mu_) { balance_ += n; }
//     Mutex mu_;
//     int balance_ GUARDED_BY(mu_) = 0;
//   };
//
// The names are clang's documented ones, without a project prefix: STYLE.md
// and reviewers already speak of GUARDED_BY, and no dependency defines them.
#ifndef DISTOPT_BASE_THREAD_ANNOTATIONS_H_
#define DISTOPT_BASE_THREAD_ANNOTATIONS_H_

#if defined(__clang__)
#define DISTOPT_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define DISTOPT_THREAD_ANNOTATION(x)
#endif

// On a class: its objects are a lock ("mutex" names it in warnings).
#define CAPABILITY(name) DISTOPT_THREAD_ANNOTATION(capability(name))
// On a class: an RAII object that holds a lock for its lifetime.
#define SCOPED_CAPABILITY DISTOPT_THREAD_ANNOTATION(scoped_lockable)

// On a member: read or written only with `mu` held.
#define GUARDED_BY(mu) DISTOPT_THREAD_ANNOTATION(guarded_by(mu))
// On a pointer member: what it points to is touched only with `mu` held.
#define PT_GUARDED_BY(mu) DISTOPT_THREAD_ANNOTATION(pt_guarded_by(mu))

// On a function: the caller must hold these locks (and still does after).
#define REQUIRES(...) DISTOPT_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
// On a function: the caller must not hold these locks (the function takes them).
#define EXCLUDES(...) DISTOPT_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))

// On a lock's own methods: they take or give back the lock.
#define ACQUIRE(...) DISTOPT_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) DISTOPT_THREAD_ANNOTATION(release_capability(__VA_ARGS__))

// On a function the analysis cannot follow, e.g. one that locks through a
// lambda (say why beside each use).
#define NO_THREAD_SAFETY_ANALYSIS DISTOPT_THREAD_ANNOTATION(no_thread_safety_analysis)

#endif  // DISTOPT_BASE_THREAD_ANNOTATIONS_H_
