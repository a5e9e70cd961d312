/* scripts/floor/floor.h — shared by the floor programs: this process's CPU seconds (user + sys). */
#ifndef SOAK_FLOOR_H
#define SOAK_FLOOR_H
#include <sys/resource.h>

static double cpu(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}
#endif
