//! NUMA placement as a pure function of the topology: which socket each mempool and each lcore's state
//! lives on. Kept free of DPDK calls so that multi-socket layouts can be unit-tested on one-socket
//! machines; the substrate then checks on the real machine that objects landed where the plan said.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

/// The lcores EAL enabled and the NUMA socket of each.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    /// (lcore id, socket id) pairs.
    pub lcores: Vec<(u32, u32)>,
}

impl Topology {
    /// The socket of `lcore`, if the topology knows it.
    pub fn socket_of(&self, lcore: u32) -> Option<u32> {
        self.lcores.iter().find(|(l, _)| *l == lcore).map(|&(_, s)| s)
    }

    /// Every socket that has at least one of the lcores, ascending and without repeats.
    pub fn sockets(&self) -> Vec<u32> {
        let mut sockets: Vec<u32> = self.lcores.iter().map(|&(_, s)| s).collect();
        sockets.sort_unstable();
        sockets.dedup();
        sockets
    }
}

/// One rx queue and the lcore that polls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxAssignment {
    /// Index of the port in the caller's port list.
    pub port: usize,
    /// Rx queue index on that port.
    pub queue: u16,
    /// The lcore that polls it.
    pub lcore: u32,
}

/// Where everything goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementPlan {
    /// The sockets that need a mempool (one pool per socket), ascending.
    pub pool_sockets: Vec<u32>,
    /// For each rx assignment (same order as given): the socket whose pool its queue draws from.
    pub rx_queue_sockets: Vec<u32>,
    /// For each worker lcore: the socket its state is allocated on.
    pub lcore_sockets: BTreeMap<u32, u32>,
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementError {
    /// An assignment names an lcore the topology does not have.
    UnknownLcore(u32),
}

impl core::fmt::Display for PlacementError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PlacementError::UnknownLcore(l) => write!(f, "lcore {l} is not enabled in EAL"),
        }
    }
}

impl std::error::Error for PlacementError {}

/// Plans NUMA placement: every rx queue draws mbufs from the pool on the socket of the lcore that polls
/// it (so the polling core touches local memory), one pool per socket that polls anything, and each
/// worker lcore's state on its own socket.
pub fn plan(topology: &Topology, rx: &[RxAssignment], workers: &[u32]) -> Result<PlacementPlan, PlacementError> {
    let socket = |lcore: u32| topology.socket_of(lcore).ok_or(PlacementError::UnknownLcore(lcore));
    let rx_queue_sockets = rx.iter().map(|a| socket(a.lcore)).collect::<Result<Vec<_>, _>>()?;
    let mut pool_sockets = rx_queue_sockets.clone();
    let mut lcore_sockets = BTreeMap::new();
    for &lcore in workers {
        let s = socket(lcore)?;
        lcore_sockets.insert(lcore, s);
        pool_sockets.push(s);
    }
    pool_sockets.sort_unstable();
    pool_sockets.dedup();
    Ok(PlacementPlan { pool_sockets, rx_queue_sockets, lcore_sockets })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_sockets() -> Topology {
        Topology { lcores: vec![(0, 0), (1, 0), (2, 1), (3, 1)] }
    }

    #[test]
    fn rx_queues_draw_from_the_pollers_socket() {
        let rx = [
            RxAssignment { port: 0, queue: 0, lcore: 1 },
            RxAssignment { port: 0, queue: 1, lcore: 2 },
            RxAssignment { port: 1, queue: 0, lcore: 3 },
        ];
        let plan = plan(&two_sockets(), &rx, &[1, 2, 3]).unwrap();
        assert_eq!(plan.rx_queue_sockets, [0, 1, 1]);
        assert_eq!(plan.pool_sockets, [0, 1]);
        assert_eq!(plan.lcore_sockets.get(&2), Some(&1));
    }

    #[test]
    fn a_socket_with_no_poller_gets_no_pool() {
        let rx = [RxAssignment { port: 0, queue: 0, lcore: 2 }];
        let plan = plan(&two_sockets(), &rx, &[2]).unwrap();
        assert_eq!(plan.pool_sockets, [1]);
    }

    #[test]
    fn four_sockets_one_queue_each() {
        let topo = Topology { lcores: (0..8).map(|l| (l, l / 2)).collect() };
        let rx: Vec<_> = (0..4).map(|i| RxAssignment { port: 0, queue: i as u16, lcore: i * 2 + 1 }).collect();
        let plan = plan(&topo, &rx, &[1, 3, 5, 7]).unwrap();
        assert_eq!(plan.rx_queue_sockets, [0, 1, 2, 3]);
        assert_eq!(plan.pool_sockets, [0, 1, 2, 3]);
    }

    #[test]
    fn unknown_lcore_is_an_error() {
        let rx = [RxAssignment { port: 0, queue: 0, lcore: 9 }];
        assert_eq!(plan(&two_sockets(), &rx, &[]), Err(PlacementError::UnknownLcore(9)));
    }
}
