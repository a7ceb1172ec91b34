//! AWS's state words, read into [`State`]: the only place that knows them.

use crate::cloud::{PublicAccess, State};

/// An AMI's state (`pending`, `available`, `invalid`, `deregistered`, `failed`, `error`, …).
pub(super) fn image(word: &str) -> State {
    match word {
        "pending" => State::Pending,
        "available" => State::Ready,
        "deregistered" => State::Deleted,
        "invalid" | "failed" | "error" => State::Failed(word.to_string()),
        other => State::Other(other.to_string()),
    }
}

/// A snapshot's state (`pending`, `completed`, `error`, `recoverable`, `recovering`).
pub(super) fn snapshot(word: &str) -> State {
    match word {
        "pending" => State::Pending,
        "completed" => State::Ready,
        "error" => State::Failed(word.to_string()),
        other => State::Other(other.to_string()),
    }
}

/// A volume's state (`creating`, `available`, `in-use`, `deleting`, `deleted`, `error`).
pub(super) fn volume(word: &str) -> State {
    match word {
        "creating" => State::Pending,
        "available" | "in-use" => State::Ready,
        "deleting" => State::Deleting,
        "deleted" => State::Deleted,
        "error" => State::Failed(word.to_string()),
        other => State::Other(other.to_string()),
    }
}

/// An instance's state name.
pub(super) fn instance(word: &str) -> State {
    match word {
        "pending" => State::Pending,
        "running" => State::Running,
        "stopping" => State::Stopping,
        "stopped" => State::Stopped,
        "shutting-down" => State::ShuttingDown,
        "terminated" => State::Terminated,
        other => State::Other(other.to_string()),
    }
}

/// A VPC's or subnet's state (`pending`, `available`).
pub(super) fn network(word: &str) -> State {
    match word {
        "pending" => State::Pending,
        "available" => State::Ready,
        other => State::Other(other.to_string()),
    }
}

/// An account's image or snapshot block public access state.
pub(super) fn public_access(word: &str) -> PublicAccess {
    match word {
        "unblocked" => PublicAccess::Unblocked,
        "block-new-sharing" => PublicAccess::BlockNewSharing,
        "block-all-sharing" => PublicAccess::BlockAllSharing,
        other => PublicAccess::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_words_read_as_states() {
        assert_eq!(image("available"), State::Ready);
        assert_eq!(image("failed"), State::Failed("failed".into()));
        assert_eq!(snapshot("completed"), State::Ready);
        assert_eq!(snapshot("recovering"), State::Other("recovering".into()));
        assert_eq!(volume("in-use"), State::Ready);
        assert_eq!(instance("shutting-down"), State::ShuttingDown);
        assert_eq!(network("pending"), State::Pending);
    }
}
