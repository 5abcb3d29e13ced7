//! `/api/peeringgroups/`, `/api/peeringservers/`, `/api/peeringrules/`: PSTN/peer routing.

/// Peering groups.
pub mod groups {
    use serde::{Deserialize, Serialize};
    use store::prelude::*;
    use store::{NewPeeringGroup, PeeringGroup, PeeringGroupFilter};
    use utoipa::{IntoParams, ToSchema};

    use crate::hal;
    use crate::problem::ApiError;
    use crate::resources::ListQuery;
    use crate::resources::rewrite::check_max_chars;

    /// A peering group as the API shows it.
    #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
    pub struct PeeringGroupView {
        /// Row id.
        pub id: i64,
        /// Unique name.
        pub name: String,
        /// 1–9; lower is tried first.
        pub priority: i64,
        /// Free text.
        pub description: Option<String>,
        /// HAL links.
        #[serde(rename = "_links")]
        #[schema(value_type = Object)]
        pub links: serde_json::Value,
    }

    impl From<PeeringGroup> for PeeringGroupView {
        fn from(group: PeeringGroup) -> Self {
            Self {
                links: hal::item_links(
                    "peeringgroups",
                    group.id,
                    &[(
                        "peeringservers",
                        format!("/api/peeringservers/?group_id={}", group.id),
                    )],
                ),
                id: group.id,
                name: group.name,
                priority: group.priority,
                description: group.description,
            }
        }
    }

    fn default_priority() -> i64 {
        1
    }

    /// Body of POST and PUT.
    #[derive(Debug, Clone, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct PeeringGroupInput {
        /// Unique name (1–127 characters).
        #[schema(min_length = 1, max_length = 127)]
        pub name: String,
        /// 1–9 (default 1); lower is tried first.
        #[serde(default = "default_priority")]
        #[schema(minimum = 1, maximum = 9)]
        pub priority: i64,
        /// Free text (≤255 characters).
        #[serde(default)]
        #[schema(max_length = 255)]
        pub description: Option<String>,
    }

    impl PeeringGroupInput {
        fn into_new(self) -> Result<NewPeeringGroup, ApiError> {
            check_max_chars("name", &self.name, 127)?;
            if let Some(description) = &self.description {
                check_max_chars("description", description, 255)?;
            }
            Ok(NewPeeringGroup {
                name: self.name,
                priority: self.priority,
                description: self.description,
            })
        }
    }

    /// Query parameters of the collection.
    #[derive(Debug, Clone, Deserialize, IntoParams)]
    #[into_params(parameter_in = Query)]
    #[serde(deny_unknown_fields)]
    pub struct PeeringGroupQuery {
        /// Page number (from 1).
        #[param(minimum = 1, maximum = 1000000)]
        pub page: Option<u32>,
        /// Items per page (1–1000).
        #[param(minimum = 1, maximum = 1000)]
        pub rows: Option<u32>,
        /// Pattern on the name.
        pub name: Option<String>,
    }

    impl ListQuery for PeeringGroupQuery {
        type Filter = PeeringGroupFilter;
        fn paging(&self) -> (Option<u32>, Option<u32>) {
            (self.page, self.rows)
        }
        fn filter(self) -> PeeringGroupFilter {
            PeeringGroupFilter { name: self.name }
        }
    }

    hal_collection!(
        PeeringGroupCollection,
        PeeringGroupEmbedded,
        PeeringGroupView,
        "ngcp:peeringgroups"
    );

    crud_handlers!(
        collection = "peeringgroups",
        tag = "peeringgroups",
        collection_path = "/api/peeringgroups/",
        item_path = "/api/peeringgroups/{id}",
        view = PeeringGroupView,
        page = PeeringGroupCollection,
        input = PeeringGroupInput,
        query = PeeringGroupQuery,
        store = (
            list_peering_groups,
            create_peering_group,
            get_peering_group,
            update_peering_group,
            delete_peering_group
        ),
        handlers = (
            list_groups,
            create_group,
            get_group,
            replace_group,
            patch_group,
            delete_group
        )
    );
}

/// Peering servers.
pub mod servers {
    use serde::{Deserialize, Serialize};
    use store::prelude::*;
    use store::{NewPeeringServer, PeeringServer, PeeringServerFilter, Transport};
    use utoipa::{IntoParams, ToSchema};

    use crate::hal;
    use crate::problem::ApiError;
    use crate::resources::ListQuery;
    use crate::resources::rewrite::check_max_chars;

    /// SIP transport towards the peer.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum TransportValue {
        /// UDP.
        Udp,
        /// TCP.
        Tcp,
        /// TLS.
        Tls,
    }

    impl From<TransportValue> for Transport {
        fn from(value: TransportValue) -> Self {
            match value {
                TransportValue::Udp => Transport::Udp,
                TransportValue::Tcp => Transport::Tcp,
                TransportValue::Tls => Transport::Tls,
            }
        }
    }

    impl From<Transport> for TransportValue {
        fn from(value: Transport) -> Self {
            match value {
                Transport::Udp => TransportValue::Udp,
                Transport::Tcp => TransportValue::Tcp,
                Transport::Tls => TransportValue::Tls,
            }
        }
    }

    /// A peering server as the API shows it.
    #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
    pub struct PeeringServerView {
        /// Row id.
        pub id: i64,
        /// Owning group.
        pub group_id: i64,
        /// Unique name.
        pub name: String,
        /// IPv4 or IPv6 address.
        pub ip: String,
        /// Host name for the request URI.
        pub host: Option<String>,
        /// Port.
        pub port: u16,
        /// Transport.
        pub transport: TransportValue,
        /// 1–127; share of calls within the group.
        pub weight: i64,
        /// OPTIONS pinging.
        pub probe: bool,
        /// Disabled servers are skipped.
        pub enabled: bool,
        /// HAL links.
        #[serde(rename = "_links")]
        #[schema(value_type = Object)]
        pub links: serde_json::Value,
    }

    impl From<PeeringServer> for PeeringServerView {
        fn from(server: PeeringServer) -> Self {
            Self {
                links: hal::item_links(
                    "peeringservers",
                    server.id,
                    &[
                        (
                            "peeringgroups",
                            format!("/api/peeringgroups/{}", server.group_id),
                        ),
                        (
                            "peeringserverpreferences",
                            format!("/api/peeringserverpreferences/{}", server.id),
                        ),
                    ],
                ),
                id: server.id,
                group_id: server.group_id,
                name: server.name,
                ip: server.ip,
                host: server.host,
                port: server.port,
                transport: server.transport.into(),
                weight: server.weight,
                probe: server.probe,
                enabled: server.enabled,
            }
        }
    }

    fn default_port() -> u16 {
        5060
    }
    fn default_transport() -> TransportValue {
        TransportValue::Udp
    }
    fn default_weight() -> i64 {
        1
    }
    fn default_true() -> bool {
        true
    }

    /// Body of POST and PUT.
    #[derive(Debug, Clone, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct PeeringServerInput {
        /// Owning group.
        pub group_id: i64,
        /// Unique name (1–127 characters).
        #[schema(min_length = 1, max_length = 127)]
        pub name: String,
        /// IPv4 or IPv6 address.
        #[schema(max_length = 64)]
        pub ip: String,
        /// Host name for the request URI (≤255 characters).
        #[serde(default)]
        #[schema(max_length = 255)]
        pub host: Option<String>,
        /// Port (default 5060).
        #[serde(default = "default_port")]
        #[schema(minimum = 1)]
        pub port: u16,
        /// Transport (default udp).
        #[serde(default = "default_transport")]
        pub transport: TransportValue,
        /// 1–127 (default 1).
        #[serde(default = "default_weight")]
        #[schema(minimum = 1, maximum = 127)]
        pub weight: i64,
        /// OPTIONS pinging (default false).
        #[serde(default)]
        pub probe: bool,
        /// Default true.
        #[serde(default = "default_true")]
        pub enabled: bool,
    }

    impl PeeringServerInput {
        fn into_new(self) -> Result<NewPeeringServer, ApiError> {
            check_max_chars("name", &self.name, 127)?;
            check_max_chars("ip", &self.ip, 64)?;
            if let Some(host) = &self.host {
                check_max_chars("host", host, 255)?;
            }
            Ok(NewPeeringServer {
                group_id: self.group_id,
                name: self.name,
                ip: self.ip,
                host: self.host,
                port: self.port,
                transport: self.transport.into(),
                weight: self.weight,
                probe: self.probe,
                enabled: self.enabled,
            })
        }
    }

    /// Query parameters of the collection.
    #[derive(Debug, Clone, Deserialize, IntoParams)]
    #[into_params(parameter_in = Query)]
    #[serde(deny_unknown_fields)]
    pub struct PeeringServerQuery {
        /// Page number (from 1).
        #[param(minimum = 1, maximum = 1000000)]
        pub page: Option<u32>,
        /// Items per page (1–1000).
        #[param(minimum = 1, maximum = 1000)]
        pub rows: Option<u32>,
        /// Owning group.
        pub group_id: Option<i64>,
        /// Pattern on the name.
        pub name: Option<String>,
        /// Exact address.
        pub ip: Option<String>,
        /// Enabled flag.
        pub enabled: Option<bool>,
    }

    impl ListQuery for PeeringServerQuery {
        type Filter = PeeringServerFilter;
        fn paging(&self) -> (Option<u32>, Option<u32>) {
            (self.page, self.rows)
        }
        fn filter(self) -> PeeringServerFilter {
            PeeringServerFilter {
                group_id: self.group_id,
                name: self.name,
                ip: self.ip,
                enabled: self.enabled,
            }
        }
    }

    hal_collection!(
        PeeringServerCollection,
        PeeringServerEmbedded,
        PeeringServerView,
        "ngcp:peeringservers"
    );

    crud_handlers!(
        collection = "peeringservers",
        tag = "peeringservers",
        collection_path = "/api/peeringservers/",
        item_path = "/api/peeringservers/{id}",
        view = PeeringServerView,
        page = PeeringServerCollection,
        input = PeeringServerInput,
        query = PeeringServerQuery,
        store = (
            list_peering_servers,
            create_peering_server,
            get_peering_server,
            update_peering_server,
            delete_peering_server
        ),
        handlers = (
            list_servers,
            create_server,
            get_server,
            replace_server,
            patch_server,
            delete_server
        )
    );
}

/// Peering rules.
pub mod rules {
    use serde::{Deserialize, Serialize};
    use store::prelude::*;
    use store::{NewPeeringRule, PeeringRule, PeeringRuleFilter};
    use utoipa::{IntoParams, ToSchema};

    use crate::hal;
    use crate::problem::ApiError;
    use crate::resources::ListQuery;
    use crate::resources::rewrite::check_max_chars;

    /// A peering rule as the API shows it.
    #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
    pub struct PeeringRuleView {
        /// Row id.
        pub id: i64,
        /// Owning group.
        pub group_id: i64,
        /// Callee number prefix (longest match wins).
        pub callee_prefix: String,
        /// Regex on the caller.
        pub caller_pattern: Option<String>,
        /// Regex on the callee.
        pub callee_pattern: Option<String>,
        /// Free text.
        pub description: String,
        /// Disabled rules are skipped.
        pub enabled: bool,
        /// Stop looking at lower-priority groups after this one.
        pub stopper: bool,
        /// HAL links.
        #[serde(rename = "_links")]
        #[schema(value_type = Object)]
        pub links: serde_json::Value,
    }

    impl From<PeeringRule> for PeeringRuleView {
        fn from(rule: PeeringRule) -> Self {
            Self {
                links: hal::item_links(
                    "peeringrules",
                    rule.id,
                    &[(
                        "peeringgroups",
                        format!("/api/peeringgroups/{}", rule.group_id),
                    )],
                ),
                id: rule.id,
                group_id: rule.group_id,
                callee_prefix: rule.callee_prefix,
                caller_pattern: rule.caller_pattern,
                callee_pattern: rule.callee_pattern,
                description: rule.description,
                enabled: rule.enabled,
                stopper: rule.stopper,
            }
        }
    }

    fn default_true() -> bool {
        true
    }

    /// Body of POST and PUT.
    #[derive(Debug, Clone, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct PeeringRuleInput {
        /// Owning group.
        pub group_id: i64,
        /// Callee number prefix (≤16 characters, may be empty).
        #[serde(default)]
        #[schema(max_length = 16)]
        pub callee_prefix: String,
        /// Regex on the caller (≤255 characters).
        #[serde(default)]
        #[schema(max_length = 255)]
        pub caller_pattern: Option<String>,
        /// Regex on the callee (≤255 characters).
        #[serde(default)]
        #[schema(max_length = 255)]
        pub callee_pattern: Option<String>,
        /// Free text (≤255 characters).
        #[serde(default)]
        #[schema(max_length = 255)]
        pub description: String,
        /// Default true.
        #[serde(default = "default_true")]
        pub enabled: bool,
        /// Default false.
        #[serde(default)]
        pub stopper: bool,
    }

    impl PeeringRuleInput {
        fn into_new(self) -> Result<NewPeeringRule, ApiError> {
            check_max_chars("callee_prefix", &self.callee_prefix, 16)?;
            check_max_chars("description", &self.description, 255)?;
            for (field, pattern) in [
                ("caller_pattern", &self.caller_pattern),
                ("callee_pattern", &self.callee_pattern),
            ] {
                if let Some(pattern) = pattern {
                    check_max_chars(field, pattern, 255)?;
                }
            }
            Ok(NewPeeringRule {
                group_id: self.group_id,
                callee_prefix: self.callee_prefix,
                caller_pattern: self.caller_pattern,
                callee_pattern: self.callee_pattern,
                description: self.description,
                enabled: self.enabled,
                stopper: self.stopper,
            })
        }
    }

    /// Query parameters of the collection.
    #[derive(Debug, Clone, Deserialize, IntoParams)]
    #[into_params(parameter_in = Query)]
    #[serde(deny_unknown_fields)]
    pub struct PeeringRuleQuery {
        /// Page number (from 1).
        #[param(minimum = 1, maximum = 1000000)]
        pub page: Option<u32>,
        /// Items per page (1–1000).
        #[param(minimum = 1, maximum = 1000)]
        pub rows: Option<u32>,
        /// Owning group.
        pub group_id: Option<i64>,
        /// Enabled flag.
        pub enabled: Option<bool>,
    }

    impl ListQuery for PeeringRuleQuery {
        type Filter = PeeringRuleFilter;
        fn paging(&self) -> (Option<u32>, Option<u32>) {
            (self.page, self.rows)
        }
        fn filter(self) -> PeeringRuleFilter {
            PeeringRuleFilter {
                group_id: self.group_id,
                enabled: self.enabled,
            }
        }
    }

    hal_collection!(
        PeeringRuleCollection,
        PeeringRuleEmbedded,
        PeeringRuleView,
        "ngcp:peeringrules"
    );

    crud_handlers!(
        collection = "peeringrules",
        tag = "peeringrules",
        collection_path = "/api/peeringrules/",
        item_path = "/api/peeringrules/{id}",
        view = PeeringRuleView,
        page = PeeringRuleCollection,
        input = PeeringRuleInput,
        query = PeeringRuleQuery,
        store = (
            list_peering_rules,
            create_peering_rule,
            get_peering_rule,
            update_peering_rule,
            delete_peering_rule
        ),
        handlers = (
            list_rules,
            create_rule,
            get_rule,
            replace_rule,
            patch_rule,
            delete_rule
        )
    );
}
