/* nsfork-runtime-timer: a transparent timing wrapper around an OCI runtime, for `nsfork-bench
 * engines`. An engine is given a copy of this program as its runtime; each call runs the real
 * runtime and appends one line to a log:  VERB NS STATUS STARTUP_NS  (NS: from the fork of the
 * runtime until it was reaped; STATUS: its exit code, or -N when killed by signal N; STARTUP_NS:
 * the wrapper's own time before that fork). The benchmark sums a run's NS: the runtime's own
 * share of the engine's time.
 *
 * Its configuration is a sidecar file beside the copy, found through /proc/self/exe (not argv[0]:
 * engines pass what they like there), named <exe>.conf:
 *     line 1: the log file (appended to)
 *     line 2 on: the real runtime's argv prefix, one argument per line (its path first, then any
 *                leading arguments, e.g. nsfork-oci's --nsfork-socket PATH)
 * The engine's own arguments follow the prefix.
 *
 * Transparent: the runtime gets every fd, stdio, the environment and the arguments as given
 * (nothing of the wrapper's own is open in it: the files it opens are close-on-exec from birth);
 * signals the wrapper can catch are forwarded to it (Slurm's foreground `run` gets SIGTERM on
 * scancel); the wrapper exits with its status, or dies of the same signal. The runtime gets
 * PR_SET_PDEATHSIG(SIGKILL): a SIGKILL meant for the runtime that lands on the wrapper still
 * ends it. The wrapper is not a subreaper: what the runtime leaves behind (the container process)
 * is reparented past it to the engine's subreaper (conmon, the containerd shim), as without it.
 *
 * Static, C, no allocation after start-up beyond the configuration: its own cost is an exec of a
 * small static binary, a file read and a fork (bench/README.md measures it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONF 16384
#define MAX_PREFIX 32

static volatile pid_t child = -1;

/* Signals forwarded to the runtime: every catchable one a caller might send to stop, reload or
 * notify it. Not SIGCHLD, SIGSTOP, SIGKILL, the synchronous faults, nor the terminal's stop
 * signals (a terminal sends those to the whole process group, the runtime included: the wrapper
 * stops with it). */
static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM,
                                SIGWINCH, SIGCONT, SIGURG, SIGXCPU, SIGXFSZ,
                                SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSYS};
#define NFORWARDED (sizeof forwarded / sizeof forwarded[0])

static void forward(int sig) {
    const int saved = errno;
    if (child > 0) kill(child, sig);
    errno = saved;
}

static void die(const char* what) {
    fprintf(stderr, "nsfork-runtime-timer: %s: %s\n", what, strerror(errno));
    exit(127);
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The runtime's verb: its first argument that is not a global option (or an option's value).
 * runc's global options that take a value, when not written as --opt=value: */
static const char* verb_of(int argc, char** argv) {
    static const char* const valued[] = {"--root", "--log", "--log-format", "--criu", "--rootless", NULL};
    for (int i = 1; i < argc; ++i) {
        if (argv[i][0] != '-') return argv[i];
        for (const char* const* v = valued; *v; ++v)
            if (strcmp(argv[i], *v) == 0) {
                ++i;
                break;
            }
    }
    return "-";
}

int main(int argc, char** argv) {
    const long long t0 = now_ns();
    /* The configuration: <exe>.conf. */
    char exe[4096], conf_path[4200];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) die("readlink /proc/self/exe");
    exe[n] = '\0';
    snprintf(conf_path, sizeof conf_path, "%s.conf", exe);
    static char conf[MAX_CONF];
    const int cfd = open(conf_path, O_RDONLY | O_CLOEXEC);
    if (cfd < 0) die(conf_path);
    ssize_t len = 0, r;
    while (len < MAX_CONF - 1 && (r = read(cfd, conf + len, MAX_CONF - 1 - len)) != 0) {
        if (r < 0) {
            if (errno == EINTR) continue;
            die(conf_path);
        }
        len += r;
    }
    close(cfd);
    conf[len] = '\0';
    char* lines[MAX_PREFIX + 1];
    int nlines = 0;
    for (char* p = conf; *p && nlines <= MAX_PREFIX;) {
        char* nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        if (*p) lines[nlines++] = p;
        if (!nl) break;
        p = nl + 1;
    }
    if (nlines < 2) {
        errno = EINVAL;
        die("the configuration needs a log file and a runtime");
    }
    const int log = open(lines[0], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (log < 0) die(lines[0]);

    /* The runtime's argv: the prefix, then ours after argv[0]. */
    const int nprefix = nlines - 1;
    char** args = calloc((size_t)(nprefix + argc), sizeof *args);
    if (!args) die("calloc");
    for (int i = 0; i < nprefix; ++i) args[i] = lines[1 + i];
    for (int i = 1; i < argc; ++i) args[nprefix + i - 1] = argv[i];
    args[nprefix + argc - 1] = NULL;

    /* Signals are blocked from before the fork until the child's pid is known, so that none
     * arriving in between is lost: it is forwarded once they are unblocked. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    /* A signal the caller had us ignore stays ignored (and so, across exec, in the runtime). */
    struct sigaction was[NFORWARDED];
    for (size_t i = 0; i < NFORWARDED; ++i) {
        sigaction(forwarded[i], NULL, &was[i]);
        if (was[i].sa_handler != SIG_IGN) sigaction(forwarded[i], &sa, NULL);
    }
    const long long t1 = now_ns();
    const pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        /* The caller's dispositions and mask, as if we were not here. */
        for (size_t i = 0; i < NFORWARDED; ++i) sigaction(forwarded[i], &was[i], NULL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1) _exit(137); /* the wrapper is already gone */
        sigprocmask(SIG_SETMASK, &old, NULL);
        execv(args[0], args);
        fprintf(stderr, "nsfork-runtime-timer: cannot run %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    child = pid;
    sigprocmask(SIG_SETMASK, &old, NULL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) die("waitpid");
    const long long t2 = now_ns();

    const int code = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
    char line[512];
    /* runtime: fork until reaped; wrapper: its own start-up before the fork (not counted). */
    const int m = snprintf(line, sizeof line, "%s %lld %d %lld\n", verb_of(argc, argv), t2 - t1, code, t1 - t0);
    if (m > 0 && write(log, line, (size_t)m) < 0) { /* the run goes on: the figure lacks a line */
    }
    close(log);

    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        const struct rlimit no_core = {0, 0}; /* the runtime dumped its own, if any */
        setrlimit(RLIMIT_CORE, &no_core);
        signal(sig, SIG_DFL);
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        sigprocmask(SIG_UNBLOCK, &one, NULL);
        raise(sig);
        return 128 + sig; /* a signal that does not kill when raised here */
    }
    return WEXITSTATUS(status);
}
