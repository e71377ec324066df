//! The classic group state machine (Kafka's `ClassicGroupState`) with its
//! table of legal transitions.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Waiting for every member to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment in SyncGroup.
    CompletingRebalance,
    /// Assignment delivered; members heartbeat.
    Stable,
    /// Removed (deleted, expired, or its offsets all gone).
    Dead,
}

use GroupState::*;

impl GroupState {
    pub const ALL: [GroupState; 5] = [Empty, PreparingRebalance, CompletingRebalance, Stable, Dead];

    /// The states a group may move to `self` from (Kafka's `validPreviousStates`).
    fn valid_previous(self) -> &'static [GroupState] {
        match self {
            Empty => &[PreparingRebalance],
            PreparingRebalance => &[Stable, CompletingRebalance, Empty],
            CompletingRebalance => &[PreparingRebalance],
            Stable => &[CompletingRebalance],
            Dead => &[Stable, PreparingRebalance, CompletingRebalance, Empty, Dead],
        }
    }

    pub fn can_transition_to(self, next: GroupState) -> bool {
        next.valid_previous().contains(&self)
    }

    /// The name Kafka uses on the wire (DescribeGroups, ListGroups).
    pub fn as_str(self) -> &'static str {
        match self {
            Empty => "Empty",
            PreparingRebalance => "PreparingRebalance",
            CompletingRebalance => "CompletingRebalance",
            Stable => "Stable",
            Dead => "Dead",
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (from, to) pair, written out: the table above must agree with it.
    #[test]
    fn transition_table_is_exactly_kafkas() {
        let legal: &[(GroupState, GroupState)] = &[
            (PreparingRebalance, Empty),
            (Stable, PreparingRebalance),
            (CompletingRebalance, PreparingRebalance),
            (Empty, PreparingRebalance),
            (PreparingRebalance, CompletingRebalance),
            (CompletingRebalance, Stable),
            (Stable, Dead),
            (PreparingRebalance, Dead),
            (CompletingRebalance, Dead),
            (Empty, Dead),
            (Dead, Dead),
        ];
        let mut checked = 0;
        for from in GroupState::ALL {
            for to in GroupState::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 25);
    }

    #[test]
    fn wire_names() {
        let names: Vec<_> = GroupState::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            [
                "Empty",
                "PreparingRebalance",
                "CompletingRebalance",
                "Stable",
                "Dead"
            ]
        );
    }
}
