//! SMART App Launch v1 scopes (`user/Observation.read`, `system/*.write`, `patient/*.*`):
//! what a token lets its bearer do, before roles and relationships are considered.

use std::fmt;
use std::str::FromStr;

use crate::category;
use crate::names::Action;

/// A scope string that is not a SMART v1 resource scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Not of the form `context/Type.permission`.
    #[error("malformed scope `{0}`: expected `patient|user|system/<Type|*>.<read|write|*>`")]
    Malformed(String),
    /// The part before `/` is not `patient`, `user` or `system`.
    #[error("unknown scope context in `{0}`: expected patient, user or system")]
    UnknownContext(String),
    /// The resource part is neither `*` nor a FHIR R4 resource type.
    #[error("unknown resource type in scope `{0}`: expected `*` or a FHIR R4 resource type")]
    UnknownResourceType(String),
    /// The permission is not `read`, `write` or `*` (SMART v2's `cruds` letters are not
    /// accepted).
    #[error("unknown permission in scope `{0}`: expected read, write or *")]
    UnknownPermission(String),
}

impl ScopeError {
    fn cut(s: &str) -> String {
        s.chars().take(80).collect()
    }
}

/// Whose access a scope describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeContext {
    /// `patient/`: the patient in context (patient-facing apps). No [`Role`](crate::Role)
    /// uses these yet, so they grant nothing in [`decide`](crate::decide).
    Patient,
    /// `user/`: whatever the signed-in person may see. Used by every human role.
    User,
    /// `system/`: a machine client with no user. Used by [`Role::System`](crate::Role).
    System,
}

impl ScopeContext {
    /// The scope prefix (`patient`, `user`, `system`).
    pub const fn name(self) -> &'static str {
        match self {
            ScopeContext::Patient => "patient",
            ScopeContext::User => "user",
            ScopeContext::System => "system",
        }
    }
}

/// The resource types a scope covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeResource {
    /// `*`: every type.
    Any,
    /// One FHIR R4 resource type.
    Type(&'static str),
}

/// What a scope allows on its types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `read`: read, search, history and export.
    Read,
    /// `write`: create, update and delete.
    Write,
    /// `*`: both.
    All,
}

impl Permission {
    /// Whether this permission covers `action`.
    pub const fn covers(self, action: Action) -> bool {
        match self {
            Permission::All => true,
            Permission::Write => action.is_write(),
            Permission::Read => !action.is_write(),
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::All => "*",
        }
    }
}

/// One SMART v1 resource scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scope {
    /// `patient`, `user` or `system`.
    pub context: ScopeContext,
    /// `*` or a resource type.
    pub resource: ScopeResource,
    /// `read`, `write` or `*`.
    pub permission: Permission,
}

impl Scope {
    /// Whether this scope, in `context`, lets its bearer do `action` on `rtype`.
    pub fn allows_in(&self, context: ScopeContext, rtype: &str, action: Action) -> bool {
        self.context == context
            && self.permission.covers(action)
            && match self.resource {
                ScopeResource::Any => true,
                ScopeResource::Type(t) => t == rtype,
            }
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, ScopeError> {
        let (context, rest) = s
            .split_once('/')
            .ok_or_else(|| ScopeError::Malformed(ScopeError::cut(s)))?;
        let (resource, permission) = rest
            .rsplit_once('.')
            .ok_or_else(|| ScopeError::Malformed(ScopeError::cut(s)))?;
        if resource.is_empty() || resource.contains(['/', '.', '?']) || permission.contains('?') {
            return Err(ScopeError::Malformed(ScopeError::cut(s)));
        }
        let context = match context {
            "patient" => ScopeContext::Patient,
            "user" => ScopeContext::User,
            "system" => ScopeContext::System,
            _ => return Err(ScopeError::UnknownContext(ScopeError::cut(s))),
        };
        let resource = if resource == "*" {
            ScopeResource::Any
        } else {
            ScopeResource::Type(
                category::intern(resource)
                    .ok_or_else(|| ScopeError::UnknownResourceType(ScopeError::cut(s)))?,
            )
        };
        let permission = match permission {
            "read" => Permission::Read,
            "write" => Permission::Write,
            "*" => Permission::All,
            _ => return Err(ScopeError::UnknownPermission(ScopeError::cut(s))),
        };
        Ok(Scope {
            context,
            resource,
            permission,
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resource = match self.resource {
            ScopeResource::Any => "*",
            ScopeResource::Type(t) => t,
        };
        write!(
            f,
            "{}/{}.{}",
            self.context.name(),
            resource,
            self.permission.name()
        )
    }
}

/// The scopes granted to a subject (a token's `scope`, space-separated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// No scopes: every request is denied.
    pub const fn empty() -> Self {
        Scopes(Vec::new())
    }

    /// Whether there are no scopes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// Whether any scope, in any context, allows `action` on `rtype`.
    pub fn allows(&self, rtype: &str, action: Action) -> bool {
        self.0.iter().any(|s| s.allows_in(s.context, rtype, action))
    }

    /// Whether a scope of `context` allows `action` on `rtype` (what [`decide`](crate::decide)
    /// asks: `user/` scopes for people, `system/` scopes for machine clients).
    pub fn allows_in(&self, context: ScopeContext, rtype: &str, action: Action) -> bool {
        self.0.iter().any(|s| s.allows_in(context, rtype, action))
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().collect())
    }
}

impl FromStr for Scopes {
    type Err = ScopeError;

    /// Parses a space-separated scope list; any scope that is not a SMART v1 resource scope
    /// (including `openid`, `launch`, `offline_access`: take those out first) is an error.
    fn from_str(s: &str) -> Result<Self, ScopeError> {
        s.split_ascii_whitespace().map(str::parse).collect()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        for s in [
            "user/Observation.read",
            "user/*.write",
            "system/*.read",
            "patient/Patient.*",
            "system/AuditEvent.read",
        ] {
            let scope: Scope = s.parse().unwrap();
            assert_eq!(scope.to_string(), s);
        }
        let scopes: Scopes = " user/Observation.read  user/*.write ".parse().unwrap();
        assert_eq!(scopes.to_string(), "user/Observation.read user/*.write");
        assert!("".parse::<Scopes>().unwrap().is_empty());
    }

    #[test]
    fn errors_are_typed() {
        use ScopeError::*;
        let e = |s: &str| s.parse::<Scope>().unwrap_err();
        assert!(matches!(e("openid"), Malformed(_)));
        assert!(matches!(e("user/Observation"), Malformed(_)));
        assert!(matches!(e("user/.read"), Malformed(_)));
        assert!(matches!(e("user/Observation.rs?category=x"), Malformed(_)));
        assert!(matches!(e("admin/*.read"), UnknownContext(_)));
        assert!(matches!(
            e("user/Observations.read"),
            UnknownResourceType(_)
        ));
        assert!(matches!(e("user/observation.read"), UnknownResourceType(_)));
        assert!(matches!(e("user/Observation.rs"), UnknownPermission(_)));
        assert!(matches!(e("user/*.cruds"), UnknownPermission(_)));
        assert!(matches!(e("user/*.READ"), UnknownPermission(_)));
        assert!("user/*.read launch".parse::<Scopes>().is_err());
        assert_eq!(
            e("user/Foo.read").to_string(),
            "unknown resource type in scope `user/Foo.read`: expected `*` or a FHIR R4 resource type"
        );
    }

    #[test]
    fn permissions_cover_actions() {
        let scopes: Scopes = "user/Observation.read user/CarePlan.write".parse().unwrap();
        let ctx = ScopeContext::User;
        for a in [
            Action::Read,
            Action::Search,
            Action::History,
            Action::Export,
        ] {
            assert!(scopes.allows_in(ctx, "Observation", a));
            assert!(!scopes.allows_in(ctx, "CarePlan", a));
        }
        for a in [Action::Create, Action::Update, Action::Delete] {
            assert!(!scopes.allows_in(ctx, "Observation", a));
            assert!(scopes.allows_in(ctx, "CarePlan", a));
        }
        assert!(!scopes.allows_in(ScopeContext::System, "Observation", Action::Read));
        assert!(scopes.allows("Observation", Action::Read));
        let all: Scopes = "system/*.*".parse().unwrap();
        for a in Action::ALL {
            assert!(all.allows_in(ScopeContext::System, "Patient", *a));
        }
    }
}
