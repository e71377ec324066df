//! The transaction state machine (Kafka's `TransactionState`) as a table of
//! legal transitions. The states themselves are [`TxnStatus`], the value the
//! transaction log stores.

use super::records::TxnStatus::{self, *};

impl TxnStatus {
    /// The states a transaction may move to `self` from. With transactions
    /// V2 (KIP-890) a client unsure of the server's state may abort from
    /// Empty, CompleteCommit or CompleteAbort, hence those in PrepareAbort.
    fn valid_previous(self) -> &'static [TxnStatus] {
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[
                Ongoing,
                PrepareEpochFence,
                Empty,
                CompleteCommit,
                CompleteAbort,
            ],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    pub fn can_transition_to(self, next: TxnStatus) -> bool {
        next.valid_previous().contains(&self)
    }

    /// Whether an idle transactional id in this state may expire
    /// (`transactional.id.expiration.ms`).
    pub fn expiration_allowed(self) -> bool {
        matches!(self, Empty | CompleteCommit | CompleteAbort)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (from, to) pair, written out: the table must agree with it.
    #[test]
    fn transition_table_is_exactly_kafkas() {
        let legal: &[(TxnStatus, TxnStatus)] = &[
            (Empty, Empty),
            (CompleteCommit, Empty),
            (CompleteAbort, Empty),
            (Ongoing, Ongoing),
            (Empty, Ongoing),
            (CompleteCommit, Ongoing),
            (CompleteAbort, Ongoing),
            (Ongoing, PrepareCommit),
            (Ongoing, PrepareAbort),
            (PrepareEpochFence, PrepareAbort),
            (Empty, PrepareAbort),
            (CompleteCommit, PrepareAbort),
            (CompleteAbort, PrepareAbort),
            (PrepareCommit, CompleteCommit),
            (PrepareAbort, CompleteAbort),
            (Empty, Dead),
            (CompleteAbort, Dead),
            (CompleteCommit, Dead),
            (Ongoing, PrepareEpochFence),
        ];
        let mut checked = 0;
        for from in TxnStatus::ALL {
            for to in TxnStatus::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    legal.contains(&(from, to)),
                    "{} -> {}",
                    from.name(),
                    to.name()
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 64);
    }

    #[test]
    fn only_finished_or_empty_transactions_expire() {
        let expiring: Vec<_> = TxnStatus::ALL
            .into_iter()
            .filter(|s| s.expiration_allowed())
            .collect();
        assert_eq!(expiring, [Empty, CompleteCommit, CompleteAbort]);
    }
}
