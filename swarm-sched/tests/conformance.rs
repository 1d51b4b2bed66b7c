//! `SwarmScheduler` keeps the `Scheduler` contract with every strategy,
//! and with an app's filter in the chain.

use swarm_core::model::Task;
use swarm_core::testing::scheduler_suite;
use swarm_sched::{Candidate, Filter, SchedulerConfig, Strategy, SwarmScheduler};

#[test]
fn spread_keeps_the_contract() {
    scheduler_suite(
        &SwarmScheduler::new(SchedulerConfig::default().strategy(Strategy::Spread)).unwrap(),
    );
}

#[test]
fn binpack_keeps_the_contract() {
    scheduler_suite(
        &SwarmScheduler::new(SchedulerConfig::default().strategy(Strategy::Binpack)).unwrap(),
    );
}

/// A filter that accepts every node: the chain then takes the general
/// path, which must keep the contract too.
#[derive(Debug)]
struct Anything;

impl Filter for Anything {
    fn name(&self) -> &str {
        "anything"
    }
    fn accepts(&self, _: &Candidate<'_>, _: &Task) -> bool {
        true
    }
}

#[test]
fn an_extended_chain_keeps_the_contract() {
    for strategy in [Strategy::Spread, Strategy::Binpack] {
        scheduler_suite(
            &SwarmScheduler::builder()
                .strategy(strategy)
                .filter(Anything)
                .build()
                .unwrap(),
        );
    }
}
