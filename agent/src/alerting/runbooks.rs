//! The runbooks of `alerts/runbooks/<AlertName>.md`, compiled into the binary so that the
//! `runbook_url` of every alert answers even when the agent is the only thing running.

/// The markdown runbook of alert `name`, if it is one of the contract's names.
pub fn markdown(name: &str) -> Option<&'static str> {
    Some(match name {
        "ThreadCountAboveExpected" => {
            include_str!("../../../alerts/runbooks/ThreadCountAboveExpected.md")
        }
        "ThreadLimitNear" => include_str!("../../../alerts/runbooks/ThreadLimitNear.md"),
        "ThreadLeakSuspected" => include_str!("../../../alerts/runbooks/ThreadLeakSuspected.md"),
        "ColdStartSlow" => include_str!("../../../alerts/runbooks/ColdStartSlow.md"),
        "ServiceStuckInitializing" => {
            include_str!("../../../alerts/runbooks/ServiceStuckInitializing.md")
        }
        "CacheVersionLag" => include_str!("../../../alerts/runbooks/CacheVersionLag.md"),
        "CacheStale" => include_str!("../../../alerts/runbooks/CacheStale.md"),
        "CacheSourceFailing" => include_str!("../../../alerts/runbooks/CacheSourceFailing.md"),
        "CacheBlobUnavailable" => include_str!("../../../alerts/runbooks/CacheBlobUnavailable.md"),
        "CacheCorruptBlob" => include_str!("../../../alerts/runbooks/CacheCorruptBlob.md"),
        "PrimaryUnavailable" => include_str!("../../../alerts/runbooks/PrimaryUnavailable.md"),
        "PrimaryFlapping" => include_str!("../../../alerts/runbooks/PrimaryFlapping.md"),
        "TrackerThrottling" => include_str!("../../../alerts/runbooks/TrackerThrottling.md"),
        "AnomalyDetected" => include_str!("../../../alerts/runbooks/AnomalyDetected.md"),
        "TimeoutBugSuspected" => include_str!("../../../alerts/runbooks/TimeoutBugSuspected.md"),
        "TimeoutStorm" => include_str!("../../../alerts/runbooks/TimeoutStorm.md"),
        "TimeoutTooLarge" => include_str!("../../../alerts/runbooks/TimeoutTooLarge.md"),
        "LookoutAgentDown" => include_str!("../../../alerts/runbooks/LookoutAgentDown.md"),
        "LookoutAlertSpoolFailing" => {
            include_str!("../../../alerts/runbooks/LookoutAlertSpoolFailing.md")
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_alert_name_has_a_runbook() {
        for name in super::super::names::ALL {
            let text = super::markdown(name).unwrap_or_else(|| panic!("no runbook for {name}"));
            assert!(
                text.starts_with(&format!("# {name}")),
                "{name}: runbook must start with its title"
            );
        }
        assert!(super::markdown("NoSuchAlert").is_none());
    }
}
