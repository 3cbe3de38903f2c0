//! [`Caller`]: the principal of a request, required by every API handler, and the rules that
//! turn a requested `tenant_id` into the tenant a call acts on.

use super::credential::Via;
use super::layer::Authenticated;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rtdash_shared::auth::{is_tenant_id, Principal, Role};
use rtdash_shared::names::ALL_TENANTS;
use std::collections::BTreeMap;

/// The verified principal of a request. Extracting it fails with `401` when the request
/// presented no (valid) credential.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// How the credential came.
    pub via: Via,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .map(|auth| Caller {
                principal: auth.principal.clone(),
                via: auth.via,
            })
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "an API key is required: `Authorization: Bearer <key>`, or sign in",
                )
            })
    }
}

/// A dashboard link's scope: the one dashboard it shows and its fixed filters.
#[derive(Clone, Debug)]
pub struct LinkScope {
    /// The dashboard's tenant.
    pub tenant: String,
    /// The dashboard.
    pub dashboard_id: String,
    /// Filters merged into every query (they win over the widget's own).
    pub filters: BTreeMap<String, String>,
}

impl Caller {
    /// The tenant a call acts on, for a caller that needs `role`:
    /// - a tenant key: its tenant; a `tenant_id` naming another one is `403`;
    /// - the operator: the `tenant_id` it names (required, `400` without);
    /// - a dashboard link: `403` (links reach only what [`Caller::link`] allows);
    ///
    /// and `403` when the key's role is too low. Ids beginning with `_` are never tenants.
    pub fn tenant(&self, requested: Option<&str>, role: Role) -> Result<String, ApiError> {
        match &self.principal {
            Principal::Operator => {
                let tenant = requested.ok_or_else(|| {
                    ApiError::bad_request(
                        "the operator must name the tenant: `tenant_id` is required",
                    )
                })?;
                check_tenant(tenant)?;
                Ok(tenant.to_owned())
            }
            Principal::Tenant {
                tenant, role: own, ..
            } => {
                if let Some(requested) = requested {
                    if requested != tenant {
                        return Err(ApiError::forbidden(format!(
                            "this key belongs to another tenant than `{requested}`"
                        )));
                    }
                }
                if !own.allows(role) {
                    return Err(role_error(*own, role));
                }
                Ok(tenant.clone())
            }
            Principal::Link { .. } => Err(ApiError::forbidden(
                "a dashboard link grants read access to its dashboard only",
            )),
        }
    }

    /// Like [`Caller::tenant`], where the operator may also name `_all` (the global metric
    /// definitions every tenant sees).
    pub fn tenant_or_global(
        &self,
        requested: Option<&str>,
        role: Role,
    ) -> Result<String, ApiError> {
        if requested == Some(ALL_TENANTS) {
            return match self.principal {
                Principal::Operator => Ok(ALL_TENANTS.to_owned()),
                _ => Err(ApiError::forbidden(
                    "global definitions (`tenant_id=_all`) are the operator's",
                )),
            };
        }
        self.tenant(requested, role)
    }

    /// The scope of a dashboard-link caller whose requested tenant (if any) is the link's;
    /// `None` for any other caller.
    pub fn link(&self, requested: Option<&str>) -> Result<Option<LinkScope>, ApiError> {
        match &self.principal {
            Principal::Link {
                tenant,
                dashboard_id,
                filters,
                ..
            } => {
                if requested.is_some_and(|requested| requested != tenant) {
                    return Err(ApiError::forbidden(
                        "a dashboard link grants read access to its dashboard only",
                    ));
                }
                Ok(Some(LinkScope {
                    tenant: tenant.clone(),
                    dashboard_id: dashboard_id.clone(),
                    filters: filters.clone(),
                }))
            }
            _ => Ok(None),
        }
    }

    /// Who did it, for records (`created_by`): `operator` or the key's id.
    pub fn actor(&self) -> String {
        self.principal.id().to_owned()
    }
}

/// `403` naming the role needed.
pub fn role_error(own: Role, needed: Role) -> ApiError {
    let what = match needed {
        Role::Ingest => "sending events needs an `ingest` key".to_owned(),
        other => format!("this needs a key of role `{other}` or higher"),
    };
    ApiError::forbidden(format!("{what} (this key is `{own}`)"))
}

/// `400` unless `tenant` can name a tenant (`[A-Za-z0-9_-]`, 1 to 128, not beginning with
/// `_`).
pub fn check_tenant(tenant: &str) -> Result<(), ApiError> {
    if is_tenant_id(tenant) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "`tenant_id` must be 1 to 128 characters from [A-Za-z0-9_-], not beginning with `_`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: &str, role: Role) -> Caller {
        Caller {
            principal: Principal::Tenant {
                tenant: tenant.into(),
                role,
                key_id: "k".into(),
            },
            via: Via::Bearer,
        }
    }

    #[test]
    fn the_tenant_comes_from_the_key() {
        let viewer = key("acme", Role::Viewer);
        assert_eq!(viewer.tenant(None, Role::Viewer).unwrap(), "acme");
        assert_eq!(viewer.tenant(Some("acme"), Role::Viewer).unwrap(), "acme");
        assert_eq!(
            viewer
                .tenant(Some("other"), Role::Viewer)
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(viewer.tenant(None, Role::Editor).unwrap_err().status(), 403);
        assert_eq!(
            key("acme", Role::Ingest)
                .tenant(None, Role::Viewer)
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(
            viewer
                .tenant_or_global(Some("_all"), Role::Viewer)
                .unwrap_err()
                .status(),
            403
        );
        let operator = Caller {
            principal: Principal::Operator,
            via: Via::Bearer,
        };
        assert_eq!(
            operator.tenant(None, Role::Viewer).unwrap_err().status(),
            400
        );
        assert_eq!(operator.tenant(Some("acme"), Role::Admin).unwrap(), "acme");
        assert_eq!(
            operator
                .tenant(Some("_pipeline"), Role::Viewer)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            operator
                .tenant_or_global(Some("_all"), Role::Editor)
                .unwrap(),
            "_all"
        );
        let link = Caller {
            principal: Principal::Link {
                tenant: "acme".into(),
                dashboard_id: "d".into(),
                link_id: "l".into(),
                filters: BTreeMap::new(),
            },
            via: Via::QueryToken,
        };
        assert_eq!(link.tenant(None, Role::Viewer).unwrap_err().status(), 403);
        assert!(link.link(None).unwrap().is_some());
        assert_eq!(link.link(Some("other")).unwrap_err().status(), 403);
        assert!(viewer.link(None).unwrap().is_none());
    }
}
