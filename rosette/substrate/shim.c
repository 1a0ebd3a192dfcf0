/* Accessors for DPDK's per-lcore variables. They are C thread-locals, which bindgen cannot express:
 * binding them directly links and then crashes, so Rust reads them through these functions. */
#include "wrapper.h"

int rosette_errno(void) { return rte_errno; }

void rosette_set_errno(int value) { rte_errno = value; }

/* port.rs writes these RTE_BIT64 values as Rust constants (bindgen cannot evaluate the macro); the
 * build fails here if the headers ever disagree. */
_Static_assert(RTE_ETH_RSS_IPV4 == (1ULL << 2), "RTE_ETH_RSS_IPV4 changed: update substrate/port.rs");
_Static_assert(RTE_ETH_RSS_NONFRAG_IPV4_UDP == (1ULL << 5), "RTE_ETH_RSS_NONFRAG_IPV4_UDP changed: update substrate/port.rs");
_Static_assert(RTE_ETH_RX_OFFLOAD_RSS_HASH == (1ULL << 19), "RTE_ETH_RX_OFFLOAD_RSS_HASH changed: update substrate/port.rs");
