//! The regions a signed request may be scoped to. Each (account, region) pair is a tenant
//! with an engine and a directory of its own, so the names are a closed list: AWS' regions
//! and the ones the operator configured, never whatever a client makes up.

/// AWS' regions in the aws, aws-cn, aws-us-gov and aws-eusc partitions (December 2026).
pub const AWS_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eusc-de-east-1",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// The regions served: AWS' and the configured ones.
#[derive(Debug, Clone, Default)]
pub struct Regions {
    configured: Vec<String>,
}

impl Regions {
    /// AWS' regions and `configured` (the server's own region, and any more it was given).
    pub fn new(configured: impl IntoIterator<Item = String>) -> Regions {
        Regions {
            configured: configured.into_iter().collect(),
        }
    }

    /// Whether requests may be scoped to `region`.
    pub fn serves(&self, region: &str) -> bool {
        AWS_REGIONS.binary_search(&region).is_ok() || self.configured.iter().any(|r| r == region)
    }
}

/// Whether `region` has the shape of a region name (two letters, dash-separated words, a
/// number: `us-east-1`, `us-gov-west-1`), for names an operator configures: it becomes a
/// directory name.
pub fn is_region_name(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let [first, middle @ .., last] = &parts[..] else {
        return false;
    };
    region.len() <= 32
        && first.len() == 2
        && first.bytes().all(|b| b.is_ascii_lowercase())
        && !middle.is_empty()
        && middle
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.len() <= 2
        && last.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_every_name_is_a_region_name_or_the_sovereign_one() {
        assert!(
            AWS_REGIONS.windows(2).all(|w| w[0] < w[1]),
            "binary search needs order"
        );
        for region in AWS_REGIONS {
            assert!(
                is_region_name(region) || *region == "eusc-de-east-1",
                "{region}"
            );
        }
    }

    #[test]
    fn made_up_names_are_not_served_unless_configured() {
        let regions = Regions::new(["xx-lab-1".to_owned()]);
        assert!(regions.serves("us-east-1") && regions.serves("eusc-de-east-1"));
        assert!(regions.serves("xx-lab-1"));
        for made_up in ["zz-attack-1", "us-east-9", "", "US-EAST-1", "../etc"] {
            assert!(!regions.serves(made_up), "{made_up}");
        }
    }

    #[test]
    fn region_names_have_their_shape() {
        for region in [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-2",
            "il-central-1",
        ] {
            assert!(is_region_name(region), "{region}");
        }
        for region in [
            "",
            "us",
            "us-1",
            "US-east-1",
            "us-east-",
            "us--1",
            "a-b-1",
            "us-east-123",
            "../etc",
        ] {
            assert!(!is_region_name(region), "{region}");
        }
    }
}
