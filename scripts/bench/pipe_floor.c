/*
 * The floor under a Lua worker's round trip (LuaBenchmark's "worker round trip" lines): a
 * one-byte ping-pong between two processes over two pipes, as the server and a worker talk,
 * with no Swift, no framing and no Lua. Each end either sleeps in poll() until its byte comes,
 * or first reads its non-blocking pipe again and again for a window (sched_yield between
 * tries), as the worker pipes' ReadOnWindow does. Printed: the round trip back to back, and
 * what a round trip adds when the caller works 100 µs between calls (a batch being prepared).
 * `make bench` builds and runs it; BENCHMARKS.md compares the two.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double seconds_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec + now.tv_nsec / 1e9;
}

/* One byte from the non-blocking `descriptor`: 1, or 0 at end of input. */
static int read_byte(int descriptor, double window_seconds) {
    char byte;
    double until = seconds_now() + window_seconds;
    for (;;) {
        ssize_t count = read(descriptor, &byte, 1);
        if (count >= 0) return (int)count;
        if (errno != EAGAIN && errno != EINTR) return 0;
        if (seconds_now() < until) {
            sched_yield();
        } else {
            struct pollfd input = {descriptor, POLLIN, 0};
            poll(&input, 1, -1);
        }
    }
}

static void measure(double window_seconds, int trips) {
    int requests[2], answers[2];
    if (pipe(requests) != 0 || pipe(answers) != 0) exit(1);
    fcntl(requests[0], F_SETFL, O_NONBLOCK);
    fcntl(answers[0], F_SETFL, O_NONBLOCK);
    pid_t child = fork();
    if (child == 0) {
        close(requests[1]);
        while (read_byte(requests[0], window_seconds) == 1) {
            if (write(answers[1], "a", 1) != 1) _exit(1);
        }
        _exit(0);
    }
    close(requests[0]);
    close(answers[1]);
    double start = seconds_now();
    for (int trip = 0; trip < trips; trip++) {
        if (write(requests[1], "r", 1) != 1 || read_byte(answers[0], window_seconds) != 1) exit(1);
    }
    double back_to_back = (seconds_now() - start) / trips;
    int working_trips = trips / 10;
    start = seconds_now();
    for (int trip = 0; trip < working_trips; trip++) {
        double work_until = seconds_now() + 100e-6;
        while (seconds_now() < work_until) {}
        if (write(requests[1], "r", 1) != 1 || read_byte(answers[0], window_seconds) != 1) exit(1);
    }
    double with_work = (seconds_now() - start) / working_trips - 100e-6;
    printf("pipe round trip, %s: %.1f µs back to back, %.1f µs added to 100 µs of work\n",
           window_seconds > 0 ? "reading on for 250 µs" : "asleep in poll", back_to_back * 1e6, with_work * 1e6);
    close(requests[1]);
    close(answers[0]);
    waitpid(child, NULL, 0);
}

int main(int argc, char **argv) {
    int trips = argc > 1 ? atoi(argv[1]) : 20000;
    measure(0, trips);
    measure(250e-6, trips);
    return 0;
}
