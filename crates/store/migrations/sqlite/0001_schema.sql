-- voxide provisioning schema, SQLite dialect. Keep table and column names identical to
-- migrations/mysql/0001_schema.sql: the Rust code runs the same SQL on both.

CREATE TABLE domains (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    domain TEXT NOT NULL UNIQUE
);

CREATE TABLE customers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'pending', 'locked', 'terminated')),
    external_id TEXT
);
CREATE INDEX customers_external_id ON customers (external_id);

CREATE TABLE subscribers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE RESTRICT,
    domain_id INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    webusername TEXT,
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    webpassword_hash TEXT,
    display_name TEXT,
    email TEXT,
    external_id TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'locked', 'terminated')),
    administrative INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX subscribers_domain_username ON subscribers (domain_id, username);
CREATE UNIQUE INDEX subscribers_domain_webusername ON subscribers (domain_id, webusername);
CREATE INDEX subscribers_customer ON subscribers (customer_id);

CREATE TABLE numbers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    cc TEXT NOT NULL,
    ac TEXT NOT NULL DEFAULT '',
    sn TEXT NOT NULL,
    e164 TEXT NOT NULL,
    is_primary INTEGER NOT NULL DEFAULT 0,
    is_devid INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX numbers_e164 ON numbers (e164);
CREATE INDEX numbers_subscriber ON numbers (subscriber_id);

CREATE TABLE preference_definitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    data_type TEXT NOT NULL CHECK (data_type IN ('boolean', 'int', 'string', 'enum', 'list')),
    description TEXT NOT NULL DEFAULT '',
    default_value TEXT,
    enum_values TEXT,
    min_value INTEGER,
    max_value INTEGER,
    domain_pref INTEGER NOT NULL DEFAULT 0,
    customer_pref INTEGER NOT NULL DEFAULT 0,
    subscriber_pref INTEGER NOT NULL DEFAULT 0,
    peer_pref INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE domain_preferences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    preference_id INTEGER NOT NULL REFERENCES preference_definitions (id) ON DELETE CASCADE,
    value TEXT NOT NULL
);
CREATE UNIQUE INDEX domain_preferences_owner ON domain_preferences (domain_id, preference_id);

CREATE TABLE customer_preferences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    preference_id INTEGER NOT NULL REFERENCES preference_definitions (id) ON DELETE CASCADE,
    value TEXT NOT NULL
);
CREATE UNIQUE INDEX customer_preferences_owner ON customer_preferences (customer_id, preference_id);

CREATE TABLE subscriber_preferences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    preference_id INTEGER NOT NULL REFERENCES preference_definitions (id) ON DELETE CASCADE,
    value TEXT NOT NULL
);
CREATE UNIQUE INDEX subscriber_preferences_owner
    ON subscriber_preferences (subscriber_id, preference_id);

CREATE TABLE peering_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    priority INTEGER NOT NULL DEFAULT 1 CHECK (priority BETWEEN 1 AND 9),
    description TEXT
);

CREATE TABLE peering_servers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id INTEGER NOT NULL REFERENCES peering_groups (id) ON DELETE CASCADE,
    name TEXT NOT NULL UNIQUE,
    ip TEXT NOT NULL,
    host TEXT,
    port INTEGER NOT NULL DEFAULT 5060 CHECK (port BETWEEN 1 AND 65535),
    transport TEXT NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'tcp', 'tls')),
    weight INTEGER NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 127),
    probe INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX peering_servers_group ON peering_servers (group_id);

CREATE TABLE peer_preferences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    peering_server_id INTEGER NOT NULL REFERENCES peering_servers (id) ON DELETE CASCADE,
    preference_id INTEGER NOT NULL REFERENCES preference_definitions (id) ON DELETE CASCADE,
    value TEXT NOT NULL
);
CREATE UNIQUE INDEX peer_preferences_owner ON peer_preferences (peering_server_id, preference_id);

CREATE TABLE peering_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id INTEGER NOT NULL REFERENCES peering_groups (id) ON DELETE CASCADE,
    callee_prefix TEXT NOT NULL DEFAULT '',
    caller_pattern TEXT NOT NULL DEFAULT '',
    callee_pattern TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    enabled INTEGER NOT NULL DEFAULT 1,
    stopper INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX peering_rules_unique
    ON peering_rules (group_id, callee_prefix, caller_pattern, callee_pattern);

CREATE TABLE rewrite_rule_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT
);

CREATE TABLE rewrite_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    set_id INTEGER NOT NULL REFERENCES rewrite_rule_sets (id) ON DELETE CASCADE,
    match_pattern TEXT NOT NULL,
    replace_pattern TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    field TEXT NOT NULL CHECK (field IN ('caller', 'callee')),
    priority INTEGER NOT NULL DEFAULT 50,
    enabled INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX rewrite_rules_list ON rewrite_rules (set_id, direction, field, priority);

CREATE TABLE cf_destination_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    name TEXT NOT NULL
);
CREATE INDEX cf_destination_sets_subscriber ON cf_destination_sets (subscriber_id);

CREATE TABLE cf_destinations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination_set_id INTEGER NOT NULL REFERENCES cf_destination_sets (id) ON DELETE CASCADE,
    destination TEXT NOT NULL,
    timeout INTEGER NOT NULL DEFAULT 300,
    priority INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX cf_destinations_set ON cf_destinations (destination_set_id);

CREATE TABLE cf_time_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    name TEXT NOT NULL
);
CREATE INDEX cf_time_sets_subscriber ON cf_time_sets (subscriber_id);

CREATE TABLE cf_periods (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_set_id INTEGER NOT NULL REFERENCES cf_time_sets (id) ON DELETE CASCADE,
    year TEXT,
    month TEXT,
    mday TEXT,
    wday TEXT,
    hour TEXT,
    minute TEXT
);
CREATE INDEX cf_periods_set ON cf_periods (time_set_id);

CREATE TABLE cf_source_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'whitelist' CHECK (mode IN ('whitelist', 'blacklist')),
    is_regex INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX cf_source_sets_subscriber ON cf_source_sets (subscriber_id);

CREATE TABLE cf_sources (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_set_id INTEGER NOT NULL REFERENCES cf_source_sets (id) ON DELETE CASCADE,
    source TEXT NOT NULL
);
CREATE INDEX cf_sources_set ON cf_sources (source_set_id);

-- Mappings cascade with their sets so deleting a subscriber never trips over them; the store
-- refuses to delete a set that is still mapped (InUse) before the database gets to cascade.
CREATE TABLE cf_mappings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('cfu', 'cfb', 'cft', 'cfna')),
    destination_set_id INTEGER NOT NULL REFERENCES cf_destination_sets (id) ON DELETE CASCADE,
    time_set_id INTEGER REFERENCES cf_time_sets (id) ON DELETE CASCADE,
    source_set_id INTEGER REFERENCES cf_source_sets (id) ON DELETE CASCADE,
    enabled INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX cf_mappings_subscriber ON cf_mappings (subscriber_id, type);

CREATE TABLE admins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    login TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_superuser INTEGER NOT NULL DEFAULT 0,
    is_active INTEGER NOT NULL DEFAULT 1
);
