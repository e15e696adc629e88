//! The role to assume in the user's account, its external ID, and the IAM principal
//! ARN of the setup guide's trust policy.

use super::{AccountId, Partition, Region};
use serde::{Deserialize, Serialize};

/// The characters IAM allows in user and role names and path segments.
fn is_iam_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// `InfraKitchenRole` or `team/InfraKitchenRole`: a role name, optionally after its path.
/// Surrounding whitespace and a leading '/' are dropped.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleName(String);

impl RoleName {
    /// A name only: an ARN is refused (see [`RoleName::parse_in`] for the form's field).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.starts_with("arn:") {
            return Err("is an ARN: enter the role name (the part after ':role/', \
                        e.g. InfraKitchenRole)"
                .into());
        }
        let s = s.strip_prefix('/').unwrap_or(s);
        let (path, role) = match s.rsplit_once('/') {
            Some((p, r)) => (Some(p), r),
            None => (None, s),
        };
        let n = role.chars().count();
        if n == 0 || n > 64 || !role.chars().all(is_iam_char) {
            return Err(
                "the role name must be 1 to 64 of A-Z a-z 0-9 + = , . @ _ - \
                        (optionally after a path: team/InfraKitchenRole)"
                    .into(),
            );
        }
        if let Some(p) = path {
            if p.len() > 510
                || p.split('/')
                    .any(|seg| seg.is_empty() || !seg.chars().all(is_iam_char))
            {
                return Err(
                    "the role path must be segments of A-Z a-z 0-9 + = , . @ _ - \
                            separated by '/' (e.g. team/InfraKitchenRole)"
                        .into(),
                );
            }
        }
        Ok(RoleName(s.to_owned()))
    }

    /// The form's field: a role name, or the role's ARN pasted in its place
    /// (`arn:<partition>:iam::<account>:role/<path/name>`), which gives the name (with
    /// its path) when the ARN's account is `account` and its partition is `region`'s
    /// (each checked when known: `None` when the form's value is invalid, or when a
    /// PATCH keeps the stored one).
    /// Other ARNs (a user, an assumed-role session) are refused with what to enter.
    pub fn parse_in(
        s: &str,
        account: Option<&AccountId>,
        region: Option<&Region>,
    ) -> Result<Self, String> {
        let t = s.trim();
        if !t.starts_with("arn:") {
            return Self::parse(t);
        }
        let parts: Vec<&str> = t.splitn(6, ':').collect();
        let [_, partition, service, _, arn_account, resource] = parts.as_slice() else {
            return Err("is not a valid ARN: enter the role name (e.g. InfraKitchenRole)".into());
        };
        let (kind, rest) = resource.split_once('/').unwrap_or((resource, ""));
        match (*service, kind) {
            ("iam", "role") => {}
            ("iam", "user") => {
                return Err(
                    "is the ARN of an IAM user: enter the name of the role to assume \
                            (e.g. InfraKitchenRole), not the ARN of the user"
                        .into(),
                )
            }
            ("sts", "assumed-role") => {
                let role = rest.split('/').next().unwrap_or("");
                return Err(format!(
                    "is the ARN of an assumed-role session: enter the role name ({role}), not \
                     the ARN of a session"
                ));
            }
            _ => {
                return Err("is an ARN, but not of an IAM role: enter the role name \
                            (e.g. InfraKitchenRole) or the role's ARN \
                            (arn:aws:iam::123456789012:role/InfraKitchenRole)"
                    .into())
            }
        }
        let (Ok(arn_partition), Ok(_)) =
            (Partition::parse(partition), AccountId::parse(arn_account))
        else {
            return Err(
                "is not a valid role ARN (arn:aws:iam::123456789012:role/InfraKitchenRole): \
                 enter the role name (e.g. InfraKitchenRole)"
                    .into(),
            );
        };
        // Compared as written in the ARN (untrimmed), as the account ID check always was.
        if let Some(a) = account.filter(|a| a.as_str() != *arn_account) {
            return Err(format!(
                "is the ARN of a role in account {arn_account}, but aws_account_id is {a}: the \
                 role must be in the integration's account; enter a role of account {a}, or \
                 correct aws_account_id"
            ));
        }
        if let Some(r) = region {
            let p = r.partition();
            if p != arn_partition {
                return Err(format!(
                    "is a role ARN of partition {partition}, but aws_default_region {r} is in \
                     partition {p}: choose a region of {partition}"
                ));
            }
        }
        Self::parse(rest)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `team/InfraKitchenRole` -> `arn:aws:iam::123456789012:role/team/InfraKitchenRole`.
    pub fn arn(&self, partition: Partition, account: &AccountId) -> String {
        format!("arn:{partition}:iam::{account}:role/{}", self.0)
    }
}

/// The external ID the role's trust policy checks: 2 to 1224 of IAM's characters plus
/// ':' and '/'. Not trimmed.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExternalId(String);

impl ExternalId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        if !(2..=1224).contains(&n) {
            return Err("must be 2 to 1224 characters".into());
        }
        if !s.chars().all(|c| is_iam_char(c) || c == ':' || c == '/') {
            return Err("may contain only A-Z a-z 0-9 + = , . @ : / _ -".into());
        }
        Ok(ExternalId(s.to_owned()))
    }

    /// The External ID the platform generates for a role-delegation integration from 128
    /// random bits (the caller draws them from the OS): `ik-` and 26 Crockford base32
    /// characters. Unguessable, so no other tenant can name it in its own integration.
    pub fn generated(random: [u8; 16]) -> Self {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let n = u128::from_be_bytes(random);
        // 26 x 5 = 130 bits: the top character carries the top 3 bits.
        let text: String = (0..26)
            .rev()
            .map(|i| ALPHABET[((n >> (i * 5)) & 31) as usize] as char)
            .collect();
        ExternalId(format!("{GENERATED_PREFIX}{text}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How generated External IDs start.
pub const GENERATED_PREFIX: &str = "ik-";

/// The one place of the rule: an external ID is checked by a role's trust policy, so one
/// without a role would be silently unused. Gives the message for `aws_external_id`.
/// `role` is the role the integration will have (a form's valid value, or a stored one
/// after a PATCH); a role that was given but invalid is already an error, so callers
/// skip this check then.
pub fn check_external_id_needs_role(
    role: Option<&RoleName>,
    external: Option<&ExternalId>,
) -> Result<(), String> {
    match (role, external) {
        (None, Some(_)) => Err(
            "is only used with aws_assumed_role_name (the role's trust policy checks it)".into(),
        ),
        _ => Ok(()),
    }
}

/// An IAM user or role ARN, `arn:<partition>:iam::<12 digits>:user/<path/name>` (or
/// `:role/`): the principal of the setup guide's trust policy. No whitespace anywhere.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PrincipalArn {
    arn: String,
    partition: Partition,
}

impl PrincipalArn {
    pub fn parse(s: &str) -> Result<Self, String> {
        let err = || {
            "must be an IAM user or role ARN such as \
             arn:aws:iam::123456789012:user/InfraKitchenUser"
                .to_string()
        };
        if s.chars().any(char::is_whitespace) {
            return Err(err());
        }
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let [arn, partition, iam, region, account, resource] = parts.as_slice() else {
            return Err(err());
        };
        let partition = Partition::parse(partition).map_err(|_| err())?;
        let ok = *arn == "arn"
            && *iam == "iam"
            && region.is_empty()
            && AccountId::parse(account).is_ok()
            && (resource
                .strip_prefix("user/")
                .or_else(|| resource.strip_prefix("role/"))
                .is_some_and(|r| RoleName::parse(r).is_ok()));
        if ok {
            Ok(PrincipalArn {
                arn: s.to_owned(),
                partition,
            })
        } else {
            Err(err())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }

    pub fn partition(&self) -> Partition {
        self.partition
    }
}

string_value!(RoleName.0);
string_value!(ExternalId.0);
string_value!(PrincipalArn.arn);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_external_ids_are_26_base32_characters_of_128_bits() {
        let zero = ExternalId::generated([0; 16]);
        assert_eq!(zero.as_str(), "ik-00000000000000000000000000");
        let max = ExternalId::generated([0xff; 16]);
        assert_eq!(max.as_str(), "ik-7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        assert!(ExternalId::parse(max.as_str()).is_ok());
        let mut one = [0u8; 16];
        one[15] = 1;
        assert_ne!(ExternalId::generated(one), zero);
    }

    fn role(s: &str) -> Result<String, String> {
        RoleName::parse(s).map(String::from)
    }

    const NAME_RULE: &str = "the role name must be 1 to 64 of A-Z a-z 0-9 + = , . @ _ - \
                             (optionally after a path: team/InfraKitchenRole)";
    const PATH_RULE: &str = "the role path must be segments of A-Z a-z 0-9 + = , . @ _ - \
                             separated by '/' (e.g. team/InfraKitchenRole)";

    #[test]
    fn role_rules() {
        assert_eq!(
            role("team/InfraKitchenRole").unwrap(),
            "team/InfraKitchenRole"
        );
        assert_eq!(role("/a/b/R").unwrap(), "a/b/R");
        assert_eq!(role(" InfraKitchenRole\n").unwrap(), "InfraKitchenRole");
        assert_eq!(role("bad role").unwrap_err(), NAME_RULE);
        assert_eq!(role("").unwrap_err(), NAME_RULE);
        assert_eq!(role("team/").unwrap_err(), NAME_RULE);
        assert_eq!(role("a//R").unwrap_err(), PATH_RULE);
        assert_eq!(
            role(&format!("{}/R", "p".repeat(511))).unwrap_err(),
            PATH_RULE
        );
        assert!(role(&format!("{}/R", "p".repeat(510))).is_ok());
        assert!(role(&"r".repeat(64)).is_ok());
        assert_eq!(role(&"r".repeat(65)).unwrap_err(), NAME_RULE);
        assert_eq!(
            role("arn:aws:iam::123456789012:role/R").unwrap_err(),
            "is an ARN: enter the role name (the part after ':role/', e.g. InfraKitchenRole)"
        );
    }

    #[test]
    fn external_ids() {
        assert_eq!(
            ExternalId::parse("x").unwrap_err(),
            "must be 2 to 1224 characters"
        );
        assert!(ExternalId::parse(&"x".repeat(1224)).is_ok());
        assert!(ExternalId::parse(&"x".repeat(1225)).is_err());
        assert_eq!(
            ExternalId::parse("tenant:42/a_b").unwrap().as_str(),
            "tenant:42/a_b"
        );
        assert_eq!(
            ExternalId::parse("no spaces").unwrap_err(),
            "may contain only A-Z a-z 0-9 + = , . @ : / _ -"
        );
        // Not trimmed: the trust policy compares it byte for byte.
        assert!(ExternalId::parse(" ik-ext-1").is_err());
    }

    #[test]
    fn an_external_id_needs_a_role() {
        let r = RoleName::parse("InfraKitchenRole").unwrap();
        let x = ExternalId::parse("ik-ext-1").unwrap();
        assert_eq!(check_external_id_needs_role(Some(&r), Some(&x)), Ok(()));
        assert_eq!(check_external_id_needs_role(Some(&r), None), Ok(()));
        assert_eq!(check_external_id_needs_role(None, None), Ok(()));
        assert_eq!(
            check_external_id_needs_role(None, Some(&x)).unwrap_err(),
            "is only used with aws_assumed_role_name (the role's trust policy checks it)"
        );
    }

    #[test]
    fn a_pasted_role_arn_gives_its_name() {
        let account = AccountId::parse("123456789012").unwrap();
        let acct = Some(&account);
        let us_east = Region::parse("us-east-1").unwrap();
        let cn_north = Region::parse("cn-north-1").unwrap();
        let us = Some(&us_east);
        let parse_in =
            |s: &str, r: Option<&Region>| RoleName::parse_in(s, acct, r).map(String::from);
        assert_eq!(
            parse_in("arn:aws:iam::123456789012:role/InfraKitchenRole", us).unwrap(),
            "InfraKitchenRole"
        );
        assert_eq!(
            parse_in(
                " arn:aws:iam::123456789012:role/team/ik/InfraKitchenRole ",
                us
            )
            .unwrap(),
            "team/ik/InfraKitchenRole"
        );
        assert_eq!(
            parse_in("arn:aws-cn:iam::123456789012:role/R", Some(&cn_north)).unwrap(),
            "R"
        );
        assert_eq!(
            parse_in("arn:aws-us-gov:iam::123456789012:role/R", None).unwrap(),
            "R"
        );
        // Names still work, and are not checked against anything else.
        assert_eq!(parse_in("team/R", us).unwrap(), "team/R");
        // Without a known account, any valid account passes.
        assert_eq!(
            RoleName::parse_in("arn:aws:iam::210987654321:role/R", None, None)
                .unwrap()
                .as_str(),
            "R"
        );

        let e = |s: &str| parse_in(s, us).unwrap_err();
        assert_eq!(
            e("arn:aws:iam::210987654321:role/InfraKitchenRole"),
            "is the ARN of a role in account 210987654321, but aws_account_id is \
             123456789012: the role must be in the integration's account; enter a role of \
             account 123456789012, or correct aws_account_id"
        );
        assert_eq!(
            e("arn:aws:iam::123456789012:user/InfraKitchenUser"),
            "is the ARN of an IAM user: enter the name of the role to assume \
             (e.g. InfraKitchenRole), not the ARN of the user"
        );
        assert_eq!(
            e("arn:aws:sts::123456789012:assumed-role/InfraKitchenRole/infrakitchen-x"),
            "is the ARN of an assumed-role session: enter the role name (InfraKitchenRole), \
             not the ARN of a session"
        );
        assert_eq!(
            e("arn:aws-cn:iam::123456789012:role/R"),
            "is a role ARN of partition aws-cn, but aws_default_region us-east-1 is in \
             partition aws: choose a region of aws-cn"
        );
        assert_eq!(
            e("arn:aws:s3:::infrakitchen-123456789012-bucket"),
            "is an ARN, but not of an IAM role: enter the role name (e.g. InfraKitchenRole) \
             or the role's ARN (arn:aws:iam::123456789012:role/InfraKitchenRole)"
        );
        let invalid = "is not a valid role ARN (arn:aws:iam::123456789012:role/InfraKitchenRole): \
                       enter the role name (e.g. InfraKitchenRole)";
        assert_eq!(e("arn:aws:iam::12:role/R"), invalid);
        assert_eq!(e("arn:aws-mars:iam::123456789012:role/R"), invalid);
        assert_eq!(
            e("arn:aws:iam"),
            "is not a valid ARN: enter the role name (e.g. InfraKitchenRole)"
        );
        assert_eq!(e("arn:aws:iam::123456789012:role/bad name"), NAME_RULE);
    }

    #[test]
    fn role_arns() {
        let a = AccountId::parse("123456789012").unwrap();
        let r = RoleName::parse("team/R").unwrap();
        assert_eq!(
            r.arn(Partition::AwsCn, &a),
            "arn:aws-cn:iam::123456789012:role/team/R"
        );
    }

    #[test]
    fn principal_arns() {
        for (ok, partition) in [
            (
                "arn:aws:iam::123456789012:user/InfraKitchenUser",
                Partition::Aws,
            ),
            ("arn:aws-cn:iam::123456789012:role/team/R", Partition::AwsCn),
            (
                "arn:aws-us-gov:iam::123456789012:user/a/b/U",
                Partition::AwsUsGov,
            ),
        ] {
            let p = PrincipalArn::parse(ok).unwrap();
            assert_eq!((p.as_str(), p.partition()), (ok, partition));
        }
        for bad in [
            "",
            " arn:aws:iam::123456789012:user/U",
            "arn:aws:iam::123456789012:user/U ",
            "arn:aws-mars:iam::123456789012:user/U",
            "arn:aws:sts::123456789012:user/U",
            "arn:aws:iam:us-east-1:123456789012:user/U",
            "arn:aws:iam::12345678901:user/U",
            "arn:aws:iam::123456789012:group/G",
            "arn:aws:iam::123456789012:user/",
            "arn:aws:iam::123456789012:user/a//U",
            "ARN:aws:iam::123456789012:user/U",
        ] {
            assert_eq!(
                PrincipalArn::parse(bad).unwrap_err(),
                "must be an IAM user or role ARN such as \
                 arn:aws:iam::123456789012:user/InfraKitchenUser",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn serde_is_a_plain_string() {
        let r = RoleName::parse("team/R").unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"team/R\"");
        assert_eq!(serde_json::from_str::<RoleName>("\"/team/R\"").unwrap(), r);
        // Stored values are names: an ARN is refused there.
        assert!(serde_json::from_str::<RoleName>("\"arn:aws:iam::123456789012:role/R\"").is_err());
        assert!(serde_json::from_str::<RoleName>("\"bad role\"").is_err());

        let x = ExternalId::parse("ik-ext-1").unwrap();
        assert_eq!(serde_json::to_string(&x).unwrap(), "\"ik-ext-1\"");
        assert_eq!(
            serde_json::from_str::<ExternalId>("\"ik-ext-1\"").unwrap(),
            x
        );
        assert!(serde_json::from_str::<ExternalId>("\"x\"").is_err());

        let arn = "arn:aws-cn:iam::123456789012:user/U";
        let p = PrincipalArn::parse(arn).unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{arn}\""));
        let back: PrincipalArn = serde_json::from_str(&format!("\"{arn}\"")).unwrap();
        assert_eq!((back.partition(), &back), (Partition::AwsCn, &p));
        assert!(serde_json::from_str::<PrincipalArn>("\"arn:aws:iam::1:user/U\"").is_err());
        assert_eq!(format!("{p:?}"), format!("PrincipalArn({arn:?})"));
    }
}
