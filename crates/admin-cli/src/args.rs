//! The command line: `voxide admin [connection flags] [--json] <object> <action> …`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::settings::ConnectionArgs;

/// Everything after `voxide admin`; the binary mounts this with `#[command(flatten)]` or as a
/// subcommand's arguments.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print the API's JSON instead of tables (for scripts)
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// A stand-alone parser for [`AdminArgs`], named like the subcommand it stands for; used by
/// tests and by anything that wants to parse an `admin` command line on its own.
#[derive(Debug, Parser)]
#[command(name = "voxide admin", about = "Provision voxide through its REST API")]
pub struct AdminCli {
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// The objects an operator manages.
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// SIP domains
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Customers (the contracts subscribers belong to)
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Subscribers (SIP accounts)
    #[command(subcommand)]
    Subscriber(SubscriberCommand),
    /// Numbers of a subscriber
    #[command(subcommand)]
    Number(NumberCommand),
    /// Subscriber, domain, customer and peering server preferences
    #[command(subcommand)]
    Preference(PreferenceCommand),
    /// Call forwarding (unconditional, busy, timeout, not available)
    #[command(subcommand, name = "callforward")]
    CallForward(CallForwardCommand),
    /// Peerings: groups, servers and outbound rules
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Number rewrite rule sets and rules
    #[command(subcommand)]
    Rewrite(RewriteCommand),
    /// Call detail records made by the mediator (read-only)
    #[command(subcommand)]
    Calls(CallsCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum CallsCommand {
    /// List calls, newest first, one page at a time
    List {
        /// Calls out of or into this subscriber (id or username@domain)
        #[arg(long)]
        subscriber: Option<SubscriberRef>,
        /// Calls with this customer (id) on either side
        #[arg(long)]
        customer: Option<u64>,
        /// ok, busy, noanswer, cancel, offline, timeout, other or failed
        #[arg(long)]
        status: Option<String>,
        /// Started at or after this UTC time (2026-11-25, "2026-11-25 10:00:00", RFC 3339)
        #[arg(long)]
        since: Option<String>,
        /// Started at or before this UTC time
        #[arg(long)]
        until: Option<String>,
        /// Page number
        #[arg(long, default_value_t = 1)]
        page: u32,
        /// Calls per page (1-1000)
        #[arg(long, default_value_t = 50)]
        rows: u32,
    },
    /// Show one call with every field
    Show {
        /// Call id
        id: u64,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum DomainCommand {
    /// Create a domain
    Add {
        /// Domain name (FQDN, IPv4 address or bracketed IPv6 address)
        domain: String,
    },
    /// List domains
    List {
        /// Only domains matching this pattern (`*` wildcard)
        #[arg(long, value_name = "PATTERN")]
        filter: Option<String>,
    },
    /// Delete a domain with its subscribers, aliases and preferences
    Rm {
        /// Domain name or id
        domain: String,
    },
}

/// Life-cycle status of a new customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CustomerStatus {
    Active,
    Pending,
    Locked,
}

impl CustomerStatus {
    pub(crate) fn api_name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Pending => "pending",
            Self::Locked => "locked",
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum CustomerCommand {
    /// Create a customer
    Add {
        /// Customer name
        name: String,
        /// Operator's own reference for the customer
        #[arg(long)]
        external_id: Option<String>,
        /// Initial status
        #[arg(long, value_enum, default_value_t = CustomerStatus::Active)]
        status: CustomerStatus,
    },
    /// List customers
    List,
    /// Delete a customer that has no subscribers left
    Rm {
        /// Customer id
        id: u64,
    },
}

/// A subscriber named on the command line: its numeric id or `username@domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriberRef {
    Id(u64),
    Address { username: String, domain: String },
}

impl FromStr for SubscriberRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(id) = text.parse::<u64>() {
            return Ok(Self::Id(id));
        }
        match text.rsplit_once('@') {
            Some((username, domain)) if !username.is_empty() && !domain.is_empty() => {
                Ok(Self::Address {
                    username: username.to_owned(),
                    domain: domain.to_owned(),
                })
            }
            _ => Err(format!(
                "'{text}' is neither a subscriber id nor username@domain"
            )),
        }
    }
}

impl fmt::Display for SubscriberRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Address { username, domain } => write!(f, "{username}@{domain}"),
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum SubscriberCommand {
    /// Create a subscriber
    Add {
        /// Domain the subscriber registers in (must exist)
        domain: String,
        /// SIP username
        username: String,
        /// SIP digest password
        #[arg(id = "sip_password", value_name = "PASSWORD")]
        password: String,
        /// Customer the subscriber belongs to
        #[arg(long, value_name = "CUSTOMER_ID")]
        customer: u64,
        /// Primary number: country code (with --sn)
        #[arg(long, requires = "sn", value_parser = digits(4))]
        cc: Option<String>,
        /// Primary number: area code
        #[arg(long, requires = "sn", value_parser = digits(7))]
        ac: Option<String>,
        /// Primary number: subscriber number (with --cc)
        #[arg(long, requires = "cc", value_parser = digits(31))]
        sn: Option<String>,
        /// Display name shown to callees
        #[arg(long)]
        display_name: Option<String>,
        /// Web/API login name
        #[arg(long)]
        webusername: Option<String>,
        /// Web/API login password
        #[arg(long)]
        webpassword: Option<String>,
        /// Contact e-mail
        #[arg(long)]
        email: Option<String>,
        /// Operator's own reference for the subscriber
        #[arg(long)]
        external_id: Option<String>,
    },
    /// List subscribers
    List {
        /// Only subscribers of this domain
        #[arg(long)]
        domain: Option<String>,
        /// Only subscribers of this customer
        #[arg(long, value_name = "CUSTOMER_ID")]
        customer: Option<u64>,
        /// Only usernames matching this pattern (`*` wildcard)
        #[arg(long, value_name = "PATTERN")]
        username: Option<String>,
    },
    /// Show one subscriber
    Show {
        /// Subscriber id or username@domain
        subscriber: SubscriberRef,
    },
    /// Set a new SIP password
    Passwd {
        /// Subscriber id or username@domain
        subscriber: SubscriberRef,
        /// The new SIP digest password
        new_password: String,
    },
    /// Terminate (delete) a subscriber
    Rm {
        /// Subscriber id or username@domain
        subscriber: SubscriberRef,
    },
}

/// clap value parser for a string of 1 to `max` decimal digits (number parts, ngcp limits).
fn digits(max: usize) -> impl Fn(&str) -> Result<String, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        if text.is_empty() || text.len() > max || !text.bytes().all(|b| b.is_ascii_digit()) {
            Err(format!("must be 1 to {max} digits"))
        } else {
            Ok(text.to_owned())
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum NumberCommand {
    /// Alias numbers (extra numbers that reach the subscriber)
    #[command(subcommand)]
    Alias(AliasCommand),
    /// List numbers (primary and alias)
    List {
        /// Only the numbers of this subscriber (id or username@domain)
        #[arg(long)]
        subscriber: Option<SubscriberRef>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum AliasCommand {
    /// Add an alias number to a subscriber
    Add {
        /// Subscriber id or username@domain
        subscriber: SubscriberRef,
        /// Country code
        #[arg(long, value_parser = digits(4))]
        cc: String,
        /// Area code
        #[arg(long, value_parser = digits(7))]
        ac: Option<String>,
        /// Subscriber number
        #[arg(long, value_parser = digits(31))]
        sn: String,
        /// Mark the number as a device id (not used as caller id)
        #[arg(long)]
        devid: bool,
    },
    /// Remove an alias number from a subscriber
    Rm {
        /// Subscriber id or username@domain
        subscriber: SubscriberRef,
        /// Country code
        #[arg(long, value_parser = digits(4))]
        cc: String,
        /// Area code
        #[arg(long, value_parser = digits(7))]
        ac: Option<String>,
        /// Subscriber number
        #[arg(long, value_parser = digits(31))]
        sn: String,
    },
}

/// Which object a preference belongs to.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct PreferenceTarget {
    /// A subscriber's preferences (id or username@domain)
    #[arg(long)]
    pub subscriber: Option<SubscriberRef>,
    /// A domain's preferences (name or id)
    #[arg(long)]
    pub domain: Option<String>,
    /// A customer's preferences (id)
    #[arg(long, value_name = "CUSTOMER_ID")]
    pub customer: Option<u64>,
    /// A peering server's preferences (name or id)
    #[arg(long, value_name = "SERVER")]
    pub peer_server: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum PreferenceCommand {
    /// Show one preference, or all that are set
    Get {
        #[command(flatten)]
        target: PreferenceTarget,
        /// Preference name (all set preferences when absent)
        name: Option<String>,
    },
    /// Set a preference; give several values for list preferences
    Set {
        #[command(flatten)]
        target: PreferenceTarget,
        /// Preference name
        name: String,
        /// Value(s), typed by the preference definition
        #[arg(required = true, num_args = 1..)]
        values: Vec<String>,
    },
    /// Remove a preference (falls back to the default)
    Unset {
        #[command(flatten)]
        target: PreferenceTarget,
        /// Preference name
        name: String,
    },
}

/// Call forward types of the simple `callforwards` view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CallForwardType {
    /// Unconditional
    Cfu,
    /// On busy
    Cfb,
    /// On no answer (timeout)
    Cft,
    /// When not available (not registered)
    Cfna,
}

impl CallForwardType {
    pub(crate) const ALL: [Self; 4] = [Self::Cfu, Self::Cfb, Self::Cft, Self::Cfna];

    pub(crate) fn api_name(self) -> &'static str {
        match self {
            Self::Cfu => "cfu",
            Self::Cfb => "cfb",
            Self::Cft => "cft",
            Self::Cfna => "cfna",
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum CallForwardCommand {
    /// Show a subscriber's call forwards
    Show {
        /// Subscriber id or username@domain
        subscriber: SubscriberRef,
    },
    /// Set one call forward type, replacing its destinations
    Set {
        /// Subscriber id or username@domain
        subscriber: SubscriberRef,
        /// Call forward type
        #[arg(value_enum)]
        kind: CallForwardType,
        /// Destination: a number, a SIP URI or a keyword like voicebox; repeat to hunt in order
        #[arg(long = "to", value_name = "DESTINATION", required = true)]
        destinations: Vec<String>,
        /// Seconds each destination rings before the next is tried
        #[arg(long, default_value_t = 300)]
        timeout: u32,
        /// For cft: seconds the subscriber rings before the forward fires
        #[arg(long)]
        ringtimeout: Option<u32>,
    },
    /// Clear one call forward type, or all of them
    Clear {
        /// Subscriber id or username@domain
        subscriber: SubscriberRef,
        /// Call forward type (all types when absent)
        #[arg(value_enum)]
        kind: Option<CallForwardType>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum PeerCommand {
    /// Peering groups
    #[command(subcommand)]
    Group(PeerGroupCommand),
    /// Peering servers (the hosts of a group)
    #[command(subcommand)]
    Server(PeerServerCommand),
    /// Outbound peering rules (which calls go to a group)
    #[command(subcommand)]
    Rule(PeerRuleCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum PeerGroupCommand {
    /// Create a peering group
    Add {
        /// Unique group name
        name: String,
        /// Priority among groups, 1 (highest) to 9
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=9))]
        priority: u8,
        /// Free text
        #[arg(long)]
        description: Option<String>,
    },
    /// List peering groups
    List,
    /// Delete a peering group with its servers and rules
    Rm {
        /// Peering group name or id
        group: String,
    },
}

/// SIP transport of a peering server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub(crate) fn api_name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum PeerServerCommand {
    /// Add a server to a peering group
    Add {
        /// Peering group name or id
        group: String,
        /// Unique server name
        name: String,
        /// IP address to send to
        ip: IpAddr,
        /// Host name for the request URI (the IP when absent)
        #[arg(long)]
        host: Option<String>,
        /// SIP port
        #[arg(long, default_value_t = 5060)]
        port: u16,
        /// SIP transport
        #[arg(long, value_enum, default_value_t = Transport::Udp)]
        transport: Transport,
        /// Load-sharing weight, 1 to 127
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=127))]
        weight: u8,
        /// Ping the server with OPTIONS and skip it while it does not answer
        #[arg(long)]
        probe: bool,
        /// Create the server disabled
        #[arg(long)]
        disabled: bool,
    },
    /// List peering servers
    List {
        /// Only servers of this group (name or id)
        #[arg(long)]
        group: Option<String>,
    },
    /// Delete a peering server
    Rm {
        /// Peering server name or id
        server: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum PeerRuleCommand {
    /// Add an outbound rule to a peering group
    Add {
        /// Peering group name or id
        group: String,
        /// Callee number prefix the rule matches
        #[arg(long)]
        callee_prefix: Option<String>,
        /// Regular expression on the callee
        #[arg(long)]
        callee_pattern: Option<String>,
        /// Regular expression on the caller
        #[arg(long)]
        caller_pattern: Option<String>,
        /// Free text
        #[arg(long)]
        description: Option<String>,
        /// Stop at this group: do not fall back to lower-priority groups
        #[arg(long)]
        stopper: bool,
        /// Create the rule disabled
        #[arg(long)]
        disabled: bool,
    },
    /// List outbound peering rules
    List {
        /// Only rules of this group (name or id)
        #[arg(long)]
        group: Option<String>,
    },
    /// Delete an outbound peering rule
    Rm {
        /// Rule id (see `peer rule list`)
        id: u64,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum RewriteCommand {
    /// Rewrite rule sets
    #[command(subcommand)]
    Set(RewriteSetCommand),
    /// Rewrite rules inside a set
    #[command(subcommand)]
    Rule(RewriteRuleCommand),
    /// Show what a number becomes through a subscriber's rewrite rules (a dry run)
    Apply {
        /// Subscriber id or username@domain (its rewrite_rule_set preference and its number's
        /// cc/ac/sn as the ${caller_cc}-style variables)
        subscriber: SubscriberRef,
        /// The number to rewrite
        number: String,
        /// Which rule list runs
        #[arg(long, value_enum, default_value_t = RewriteList::CalleeIn)]
        list: RewriteList,
    },
}

/// One of the four rule lists of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RewriteList {
    CallerIn,
    CalleeIn,
    CallerOut,
    CalleeOut,
}

impl RewriteList {
    pub(crate) fn api_name(self) -> &'static str {
        match self {
            Self::CallerIn => "caller_in",
            Self::CalleeIn => "callee_in",
            Self::CallerOut => "caller_out",
            Self::CalleeOut => "callee_out",
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum RewriteSetCommand {
    /// Create a rewrite rule set
    Add {
        /// Unique set name (attach it with the rewrite_rule_set preference)
        name: String,
        /// Free text
        #[arg(long)]
        description: Option<String>,
    },
    /// List rewrite rule sets
    List,
    /// Delete a rewrite rule set with its rules
    Rm {
        /// Rule set name or id
        set: String,
    },
}

/// Whether a rewrite rule normalises numbers of calls entering the platform or renders numbers
/// for calls leaving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RewriteDirection {
    In,
    Out,
}

impl RewriteDirection {
    pub(crate) fn api_name(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

/// Which number a rewrite rule changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RewriteField {
    Caller,
    Callee,
}

impl RewriteField {
    pub(crate) fn api_name(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Callee => "callee",
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum RewriteRuleCommand {
    /// Add a rule to a rewrite rule set
    Add {
        /// Rule set name or id
        set: String,
        /// Regular expression the number must match
        #[arg(long = "match", value_name = "REGEX")]
        match_pattern: String,
        /// Replacement, with \1 back-references and ${caller_cc}-style variables
        #[arg(long = "replace", value_name = "REPLACEMENT")]
        replace_pattern: String,
        /// Free text (required by the API)
        #[arg(long)]
        description: String,
        /// Inbound (normalise) or outbound (render)
        #[arg(long, value_enum, default_value_t = RewriteDirection::In)]
        direction: RewriteDirection,
        /// Caller or callee number
        #[arg(long, value_enum, default_value_t = RewriteField::Callee)]
        field: RewriteField,
        /// Order inside the set (lower first)
        #[arg(long, default_value_t = 50)]
        priority: i32,
        /// Create the rule disabled
        #[arg(long)]
        disabled: bool,
    },
    /// List the rules of a set
    List {
        /// Rule set name or id
        set: String,
    },
    /// Delete a rewrite rule
    Rm {
        /// Rule id (see `rewrite rule list`)
        id: u64,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(argv: &[&str]) -> Result<AdminArgs, clap::Error> {
        let mut full = vec!["voxide-admin"];
        full.extend_from_slice(argv);
        AdminCli::try_parse_from(full).map(|cli| cli.admin)
    }

    #[test]
    fn command_definition_is_consistent() {
        AdminCli::command().debug_assert();
    }

    /// The shape the `voxide` binary uses: `AdminArgs` as the arguments of an `admin` subcommand.
    #[derive(Debug, Parser)]
    struct Binary {
        #[command(subcommand)]
        command: BinaryCommand,
    }

    #[derive(Debug, Subcommand)]
    enum BinaryCommand {
        Admin(AdminArgs),
    }

    #[test]
    fn mounts_as_a_subcommand_of_the_binary() {
        Binary::command().debug_assert();
        let parsed = Binary::try_parse_from([
            "voxide",
            "admin",
            "--json",
            "domain",
            "add",
            "example.org",
            "--url",
            "http://127.0.0.1:9",
        ])
        .expect("parses");
        let BinaryCommand::Admin(args) = parsed.command;
        assert!(args.json);
        assert_eq!(args.connection.url.as_deref(), Some("http://127.0.0.1:9"));
        assert!(matches!(
            args.command,
            AdminCommand::Domain(DomainCommand::Add { ref domain }) if domain == "example.org"
        ));
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let args = parse(&[
            "subscriber",
            "list",
            "--json",
            "--url",
            "http://127.0.0.1:9",
            "--user",
            "u",
        ])
        .expect("parses");
        assert!(args.json);
        assert_eq!(args.connection.url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(args.connection.user.as_deref(), Some("u"));
    }

    #[test]
    fn subscriber_add_takes_positionals_and_number_parts() {
        let args = parse(&[
            "subscriber",
            "add",
            "example.org",
            "alice",
            "s3cret",
            "--customer",
            "7",
            "--cc",
            "43",
            "--ac",
            "1",
            "--sn",
            "234567",
            "--display-name",
            "Alice",
        ])
        .expect("parses");
        let AdminCommand::Subscriber(SubscriberCommand::Add {
            domain,
            username,
            password,
            customer,
            cc,
            ac,
            sn,
            display_name,
            ..
        }) = args.command
        else {
            panic!("wrong command {:?}", args.command);
        };
        assert_eq!(
            (
                domain.as_str(),
                username.as_str(),
                password.as_str(),
                customer
            ),
            ("example.org", "alice", "s3cret", 7)
        );
        assert_eq!(
            (cc.as_deref(), ac.as_deref(), sn.as_deref()),
            (Some("43"), Some("1"), Some("234567"))
        );
        assert_eq!(display_name.as_deref(), Some("Alice"));
    }

    #[test]
    fn sip_password_does_not_leak_into_the_api_password() {
        let args = parse(&[
            "--password",
            "api-secret",
            "subscriber",
            "add",
            "example.org",
            "alice",
            "sip-secret",
            "--customer",
            "1",
        ])
        .expect("parses");
        assert_eq!(args.connection.password.as_deref(), Some("api-secret"));
        let AdminCommand::Subscriber(SubscriberCommand::Add { password, .. }) = args.command else {
            panic!("wrong command");
        };
        assert_eq!(password, "sip-secret");

        let args = parse(&[
            "subscriber",
            "add",
            "example.org",
            "alice",
            "sip-secret",
            "--customer",
            "1",
        ])
        .expect("parses");
        assert_eq!(args.connection.password, None);
    }

    #[test]
    fn usage_errors_name_the_flag() {
        let error = parse(&[
            "subscriber",
            "add",
            "example.org",
            "alice",
            "pw",
            "--customer",
            "1",
            "--cc",
            "43",
        ])
        .expect_err("cc without sn");
        assert!(error.to_string().contains("--sn"), "{error}");

        let error = parse(&[
            "subscriber",
            "add",
            "example.org",
            "alice",
            "pw",
            "--customer",
            "1",
            "--cc",
            "4x",
        ])
        .expect_err("non-digit cc");
        let text = error.to_string();
        assert!(text.contains("--cc") && text.contains("digits"), "{text}");

        let error =
            parse(&["subscriber", "add", "example.org", "alice", "pw"]).expect_err("no customer");
        assert!(error.to_string().contains("--customer"), "{error}");

        let error = parse(&["peer", "server", "add", "g", "s1", "not-an-ip"]).expect_err("bad ip");
        assert!(error.to_string().contains("<IP>"), "{error}");

        let error = parse(&[
            "peer",
            "server",
            "add",
            "g",
            "s1",
            "192.0.2.1",
            "--weight",
            "200",
        ])
        .expect_err("weight out of range");
        assert!(error.to_string().contains("--weight"), "{error}");
    }

    #[test]
    fn subscriber_reference_forms() {
        assert_eq!("42".parse::<SubscriberRef>(), Ok(SubscriberRef::Id(42)));
        assert_eq!(
            "alice@example.org".parse::<SubscriberRef>(),
            Ok(SubscriberRef::Address {
                username: "alice".into(),
                domain: "example.org".into()
            })
        );
        assert!("alice".parse::<SubscriberRef>().is_err());
        assert!("@example.org".parse::<SubscriberRef>().is_err());
        let error = parse(&["subscriber", "show", "alice"]).expect_err("no domain");
        assert!(error.to_string().contains("username@domain"), "{error}");
    }

    #[test]
    fn preference_needs_exactly_one_target() {
        let args = parse(&[
            "preference",
            "set",
            "--domain",
            "example.org",
            "allowed_ips",
            "192.0.2.0/24",
            "198.51.100.1",
        ])
        .expect("parses");
        let AdminCommand::Preference(PreferenceCommand::Set {
            target,
            name,
            values,
        }) = args.command
        else {
            panic!("wrong command");
        };
        assert_eq!(target.domain.as_deref(), Some("example.org"));
        assert_eq!(name, "allowed_ips");
        assert_eq!(values, ["192.0.2.0/24", "198.51.100.1"]);

        assert!(parse(&["preference", "get", "cli"]).is_err());
        let error = parse(&[
            "preference",
            "get",
            "--domain",
            "d",
            "--customer",
            "1",
            "cli",
        ])
        .expect_err("two targets");
        assert!(error.to_string().contains("--customer"), "{error}");
    }

    #[test]
    fn callforward_set_collects_destinations_in_order() {
        let args = parse(&[
            "callforward",
            "set",
            "alice@example.org",
            "cft",
            "--to",
            "4311",
            "--to",
            "voicebox",
            "--timeout",
            "20",
            "--ringtimeout",
            "15",
        ])
        .expect("parses");
        let AdminCommand::CallForward(CallForwardCommand::Set {
            kind,
            destinations,
            timeout,
            ringtimeout,
            ..
        }) = args.command
        else {
            panic!("wrong command");
        };
        assert_eq!(kind, CallForwardType::Cft);
        assert_eq!(destinations, ["4311", "voicebox"]);
        assert_eq!((timeout, ringtimeout), (20, Some(15)));

        let error = parse(&["callforward", "set", "1", "cfx", "--to", "1"]).expect_err("bad type");
        assert!(error.to_string().contains("cfx"), "{error}");
    }
}
