//! The AWS partition (which decides ARNs and endpoint domains) and the region code.
//! Every partition name is spelled here and nowhere else.

use serde::{Deserialize, Serialize};
use std::fmt;

/// AWS partition of a region or an ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Partition {
    Aws,
    AwsCn,
    AwsUsGov,
    AwsIso,
    AwsIsoB,
    AwsIsoE,
    AwsIsoF,
}

impl Partition {
    /// Every partition, in the order the error message lists them.
    pub const ALL: [Partition; 7] = [
        Partition::Aws,
        Partition::AwsCn,
        Partition::AwsUsGov,
        Partition::AwsIso,
        Partition::AwsIsoB,
        Partition::AwsIsoE,
        Partition::AwsIsoF,
    ];

    /// The partition's name as ARNs spell it (`arn:<partition>:...`).
    pub fn as_str(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
            Partition::AwsIso => "aws-iso",
            Partition::AwsIsoB => "aws-iso-b",
            Partition::AwsIsoE => "aws-iso-e",
            Partition::AwsIsoF => "aws-iso-f",
        }
    }

    /// A partition name exactly as an ARN spells it (`aws`, `aws-cn`, ...).
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
                format!("must be an AWS partition: {}", names.join(", "))
            })
    }

    /// The partition whose regions carry this code's prefix; everything else is `aws`.
    pub fn of_region(region: &Region) -> Self {
        Self::of_region_code(region.as_str())
    }

    fn of_region_code(region: &str) -> Self {
        if region.starts_with("cn-") {
            Partition::AwsCn
        } else if region.starts_with("us-gov-") {
            Partition::AwsUsGov
        } else if region.starts_with("us-isob-") {
            Partition::AwsIsoB
        } else if region.starts_with("us-isof-") || region.starts_with("eu-isof-") {
            Partition::AwsIsoF
        } else if region.starts_with("eu-isoe-") {
            Partition::AwsIsoE
        } else if region.starts_with("us-iso-") {
            Partition::AwsIso
        } else {
            Partition::Aws
        }
    }
}

impl AsRef<str> for Partition {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Partition {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Partition> for String {
    fn from(p: Partition) -> String {
        p.as_str().to_owned()
    }
}

const DIRECTIONS: &[&str] = &[
    "central",
    "north",
    "south",
    "east",
    "west",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

/// A well-formed region code (`us-east-1`, `us-gov-west-1`, `cn-north-1`). Strict,
/// because it becomes part of endpoint host names. Not trimmed.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    /// The region used when a form names none.
    pub const DEFAULT: &'static str = "us-east-1";

    pub fn parse(s: &str) -> Result<Self, String> {
        let err = || {
            "must be an AWS region code such as us-east-1, eu-central-1, us-gov-west-1 or \
             cn-north-1"
                .to_string()
        };
        let parts: Vec<&str> = s.split('-').collect();
        let (geo, qualifier, direction, number) = match parts.as_slice() {
            [g, d, n] => (*g, None, *d, *n),
            [g, q, d, n] => (*g, Some(*q), *d, *n),
            _ => return Err(err()),
        };
        let geo_ok = geo.len() == 2 && geo.bytes().all(|b| b.is_ascii_lowercase());
        let qual_ok =
            qualifier.is_none_or(|q| matches!(q, "gov" | "iso" | "isob" | "isoe" | "isof"));
        let dir_ok = DIRECTIONS.contains(&direction);
        // 1 to 99, no leading zero: `us-east-01` is not a region.
        let num_ok = !number.is_empty()
            && number.len() <= 2
            && number.bytes().all(|b| b.is_ascii_digit())
            && !number.starts_with('0');
        if geo_ok && qual_ok && dir_ok && num_ok {
            Ok(Region(s.to_owned()))
        } else {
            Err(err())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn partition(&self) -> Partition {
        Partition::of_region(self)
    }
}

impl Default for Region {
    fn default() -> Self {
        // A valid code by construction (see the test `the_default_region_parses`).
        Region(Self::DEFAULT.to_owned())
    }
}

string_value!(Region.0);

#[cfg(test)]
mod tests {
    use super::*;

    fn region(s: &str) -> Region {
        Region::parse(s).unwrap()
    }

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-1",
            "us-gov-west-1",
            "cn-north-1",
            "ap-southeast-5",
            "il-central-1",
            "us-iso-east-1",
        ] {
            assert_eq!(Region::parse(ok).map(|r| r.to_string()).as_deref(), Ok(ok));
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us-east-01",
            "us-east-1.evil.com",
            "usa-east-1",
            "us-up-1",
            "us-east-1/",
            " us-east-1",
        ] {
            assert_eq!(
                Region::parse(bad).unwrap_err(),
                "must be an AWS region code such as us-east-1, eu-central-1, us-gov-west-1 \
                 or cn-north-1",
                "{bad}"
            );
        }
    }

    #[test]
    fn the_default_region_parses() {
        assert_eq!(Region::default(), region("us-east-1"));
        assert_eq!(Region::default().partition(), Partition::Aws);
    }

    #[test]
    fn partitions() {
        assert_eq!(region("us-east-1").partition(), Partition::Aws);
        assert_eq!(region("cn-north-1").partition(), Partition::AwsCn);
        assert_eq!(region("us-gov-west-1").partition(), Partition::AwsUsGov);
        assert_eq!(region("us-iso-east-1").partition(), Partition::AwsIso);
        assert_eq!(region("us-isob-east-1").partition(), Partition::AwsIsoB);
        assert_eq!(region("eu-isoe-west-1").partition(), Partition::AwsIsoE);
        assert_eq!(region("us-isof-south-1").partition(), Partition::AwsIsoF);
        assert_eq!(
            Partition::of_region(&region("eu-isof-north-1")),
            Partition::AwsIsoF
        );
    }

    #[test]
    fn partition_names_round_trip() {
        for p in Partition::ALL {
            assert_eq!(Partition::parse(p.as_str()), Ok(p));
            assert_eq!(p.to_string(), p.as_str());
        }
        let names: Vec<&str> = Partition::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "aws",
                "aws-cn",
                "aws-us-gov",
                "aws-iso",
                "aws-iso-b",
                "aws-iso-e",
                "aws-iso-f"
            ]
        );
        assert_eq!(
            Partition::parse("AWS").unwrap_err(),
            "must be an AWS partition: aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, \
             aws-iso-e, aws-iso-f"
        );
        assert!(Partition::parse("").is_err());
    }

    #[test]
    fn serde_is_a_plain_string() {
        let r = region("eu-central-1");
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"eu-central-1\"");
        assert_eq!(serde_json::from_str::<Region>(&json).unwrap(), r);
        assert!(serde_json::from_str::<Region>("\"mars-1\"").is_err());
        assert!(serde_json::from_str::<Region>("1").is_err());

        assert_eq!(
            serde_json::to_string(&Partition::AwsCn).unwrap(),
            "\"aws-cn\""
        );
        assert_eq!(
            serde_json::from_str::<Partition>("\"aws-us-gov\"").unwrap(),
            Partition::AwsUsGov
        );
        assert!(serde_json::from_str::<Partition>("\"aws-mars\"").is_err());
    }

    proptest::proptest! {
        /// Host syntax spliced anywhere into a valid code is refused. Every case is such
        /// a string (and its valid base is accepted), so every case reaches both checks.
        #[test]
        fn region_never_accepts_host_syntax(
            base in proptest::sample::select(vec!["us-east-1", "eu-central-1", "us-gov-west-1", "cn-north-1", "us-iso-east-1"]),
            at in 0usize..16,
            sep in "[.:/@]",
            tail in "[a-z0-9.:/-]{0,8}",
        ) {
            proptest::prop_assert!(Region::parse(base).is_ok());
            let at = at.min(base.len());
            let host = format!("{}{sep}{tail}{}", &base[..at], &base[at..]);
            proptest::prop_assert!(Region::parse(&host).is_err(), "{} was accepted", host);
        }
    }
}
