/* Accessors for DPDK's per-lcore variables. They are C thread-locals, which bindgen cannot express:
 * binding them directly links and then crashes, so Rust reads them through these functions. */
/* rte_cpuset_t (glibc's cpu_set_t) is only declared with _GNU_SOURCE. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include "wrapper.h"

int rosette_errno(void) { return rte_errno; }

void rosette_set_errno(int value) { rte_errno = value; }

/* rte_cpuset_t is glibc's cpu_set_t, whose accessors are macros: copy it out as one byte per CPU. */
unsigned int rosette_lcore_cpus(unsigned int lcore, unsigned char *cpus, unsigned int n) {
    rte_cpuset_t set = rte_lcore_cpuset(lcore);
    unsigned int count = 0;
    for (unsigned int i = 0; i < n; i++) {
        cpus[i] = (i < CPU_SETSIZE && CPU_ISSET(i, &set)) ? 1 : 0;
        count += cpus[i];
    }
    return count;
}

/* port.rs writes these RTE_BIT64 values as Rust constants (bindgen cannot evaluate the macro); the
 * build fails here if the headers ever disagree. */
_Static_assert(RTE_ETH_RSS_IPV4 == (1ULL << 2), "RTE_ETH_RSS_IPV4 changed: update substrate/port.rs");
_Static_assert(RTE_ETH_RSS_NONFRAG_IPV4_UDP == (1ULL << 5), "RTE_ETH_RSS_NONFRAG_IPV4_UDP changed: update substrate/port.rs");
_Static_assert(RTE_ETH_RX_OFFLOAD_RSS_HASH == (1ULL << 19), "RTE_ETH_RX_OFFLOAD_RSS_HASH changed: update substrate/port.rs");
