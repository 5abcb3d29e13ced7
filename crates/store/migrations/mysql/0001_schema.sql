-- voxide provisioning schema, MariaDB/MySQL dialect: InnoDB, utf8mb4 with binary collation so
-- names compare byte-wise as in SQLite. Table and column names match migrations/sqlite.

CREATE TABLE domains (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    domain VARCHAR(127) NOT NULL UNIQUE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE customers (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'pending', 'locked', 'terminated')),
    external_id VARCHAR(255)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX customers_external_id ON customers (external_id);

CREATE TABLE subscribers (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    uuid CHAR(36) NOT NULL UNIQUE,
    customer_id BIGINT NOT NULL,
    domain_id BIGINT NOT NULL,
    username VARCHAR(127) NOT NULL,
    webusername VARCHAR(127),
    ha1_md5 CHAR(32) NOT NULL,
    ha1_sha256 CHAR(64) NOT NULL,
    webpassword_hash VARCHAR(255),
    display_name VARCHAR(255),
    email VARCHAR(255),
    external_id VARCHAR(255),
    status VARCHAR(16) NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'locked', 'terminated')),
    administrative BOOLEAN NOT NULL DEFAULT 0,
    FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE RESTRICT,
    FOREIGN KEY (domain_id) REFERENCES domains (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX subscribers_domain_username ON subscribers (domain_id, username);
CREATE UNIQUE INDEX subscribers_domain_webusername ON subscribers (domain_id, webusername);
CREATE INDEX subscribers_customer ON subscribers (customer_id);

CREATE TABLE numbers (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    subscriber_id BIGINT NOT NULL,
    cc VARCHAR(4) NOT NULL,
    ac VARCHAR(7) NOT NULL DEFAULT '',
    sn VARCHAR(31) NOT NULL,
    e164 VARCHAR(42) NOT NULL,
    is_primary BOOLEAN NOT NULL DEFAULT 0,
    is_devid BOOLEAN NOT NULL DEFAULT 0,
    FOREIGN KEY (subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX numbers_e164 ON numbers (e164);
CREATE INDEX numbers_subscriber ON numbers (subscriber_id);

CREATE TABLE preference_definitions (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(255) NOT NULL UNIQUE,
    data_type VARCHAR(16) NOT NULL CHECK (data_type IN ('boolean', 'int', 'string', 'enum', 'list')),
    description VARCHAR(255) NOT NULL DEFAULT '',
    default_value MEDIUMTEXT,
    enum_values MEDIUMTEXT,
    min_value BIGINT,
    max_value BIGINT,
    domain_pref BOOLEAN NOT NULL DEFAULT 0,
    customer_pref BOOLEAN NOT NULL DEFAULT 0,
    subscriber_pref BOOLEAN NOT NULL DEFAULT 0,
    peer_pref BOOLEAN NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE domain_preferences (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    domain_id BIGINT NOT NULL,
    preference_id BIGINT NOT NULL,
    value MEDIUMTEXT NOT NULL,
    FOREIGN KEY (domain_id) REFERENCES domains (id) ON DELETE CASCADE,
    FOREIGN KEY (preference_id) REFERENCES preference_definitions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX domain_preferences_owner ON domain_preferences (domain_id, preference_id);

CREATE TABLE customer_preferences (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    customer_id BIGINT NOT NULL,
    preference_id BIGINT NOT NULL,
    value MEDIUMTEXT NOT NULL,
    FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE,
    FOREIGN KEY (preference_id) REFERENCES preference_definitions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX customer_preferences_owner ON customer_preferences (customer_id, preference_id);

CREATE TABLE subscriber_preferences (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    subscriber_id BIGINT NOT NULL,
    preference_id BIGINT NOT NULL,
    value MEDIUMTEXT NOT NULL,
    FOREIGN KEY (subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE,
    FOREIGN KEY (preference_id) REFERENCES preference_definitions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX subscriber_preferences_owner
    ON subscriber_preferences (subscriber_id, preference_id);

CREATE TABLE peering_groups (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(255) NOT NULL UNIQUE,
    priority BIGINT NOT NULL DEFAULT 1 CHECK (priority BETWEEN 1 AND 9),
    description VARCHAR(255)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE peering_servers (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    group_id BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL UNIQUE,
    ip VARCHAR(64) NOT NULL,
    host VARCHAR(255),
    port BIGINT NOT NULL DEFAULT 5060 CHECK (port BETWEEN 1 AND 65535),
    transport VARCHAR(8) NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'tcp', 'tls')),
    weight BIGINT NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 127),
    probe BOOLEAN NOT NULL DEFAULT 0,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    FOREIGN KEY (group_id) REFERENCES peering_groups (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX peering_servers_group ON peering_servers (group_id);

CREATE TABLE peer_preferences (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    peering_server_id BIGINT NOT NULL,
    preference_id BIGINT NOT NULL,
    value MEDIUMTEXT NOT NULL,
    FOREIGN KEY (peering_server_id) REFERENCES peering_servers (id) ON DELETE CASCADE,
    FOREIGN KEY (preference_id) REFERENCES preference_definitions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX peer_preferences_owner ON peer_preferences (peering_server_id, preference_id);

CREATE TABLE peering_rules (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    group_id BIGINT NOT NULL,
    callee_prefix VARCHAR(16) NOT NULL DEFAULT '',
    caller_pattern VARCHAR(255) NOT NULL DEFAULT '',
    callee_pattern VARCHAR(255) NOT NULL DEFAULT '',
    description VARCHAR(255) NOT NULL DEFAULT '',
    enabled BOOLEAN NOT NULL DEFAULT 1,
    stopper BOOLEAN NOT NULL DEFAULT 0,
    FOREIGN KEY (group_id) REFERENCES peering_groups (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX peering_rules_unique
    ON peering_rules (group_id, callee_prefix, caller_pattern, callee_pattern);

CREATE TABLE rewrite_rule_sets (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(255) NOT NULL UNIQUE,
    description VARCHAR(255)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE rewrite_rules (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    set_id BIGINT NOT NULL,
    match_pattern VARCHAR(255) NOT NULL,
    replace_pattern VARCHAR(255) NOT NULL,
    description VARCHAR(255) NOT NULL DEFAULT '',
    direction VARCHAR(8) NOT NULL CHECK (direction IN ('in', 'out')),
    field VARCHAR(8) NOT NULL CHECK (field IN ('caller', 'callee')),
    priority BIGINT NOT NULL DEFAULT 50,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    FOREIGN KEY (set_id) REFERENCES rewrite_rule_sets (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX rewrite_rules_list ON rewrite_rules (set_id, direction, field, priority);

CREATE TABLE cf_destination_sets (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    subscriber_id BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL,
    FOREIGN KEY (subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX cf_destination_sets_subscriber ON cf_destination_sets (subscriber_id);

CREATE TABLE cf_destinations (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    destination_set_id BIGINT NOT NULL,
    destination VARCHAR(255) NOT NULL,
    timeout BIGINT NOT NULL DEFAULT 300,
    priority BIGINT NOT NULL DEFAULT 1,
    FOREIGN KEY (destination_set_id) REFERENCES cf_destination_sets (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX cf_destinations_set ON cf_destinations (destination_set_id);

CREATE TABLE cf_time_sets (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    subscriber_id BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL,
    FOREIGN KEY (subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX cf_time_sets_subscriber ON cf_time_sets (subscriber_id);

CREATE TABLE cf_periods (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    time_set_id BIGINT NOT NULL,
    year VARCHAR(16),
    month VARCHAR(16),
    mday VARCHAR(16),
    wday VARCHAR(16),
    hour VARCHAR(16),
    minute VARCHAR(16),
    FOREIGN KEY (time_set_id) REFERENCES cf_time_sets (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX cf_periods_set ON cf_periods (time_set_id);

CREATE TABLE cf_source_sets (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    subscriber_id BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL,
    mode VARCHAR(16) NOT NULL DEFAULT 'whitelist' CHECK (mode IN ('whitelist', 'blacklist')),
    is_regex BOOLEAN NOT NULL DEFAULT 0,
    FOREIGN KEY (subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX cf_source_sets_subscriber ON cf_source_sets (subscriber_id);

CREATE TABLE cf_sources (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    source_set_id BIGINT NOT NULL,
    source VARCHAR(255) NOT NULL,
    FOREIGN KEY (source_set_id) REFERENCES cf_source_sets (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX cf_sources_set ON cf_sources (source_set_id);

-- Mappings cascade with their sets so deleting a subscriber never trips over them; the store
-- refuses to delete a set that is still mapped (InUse) before the database gets to cascade.
CREATE TABLE cf_mappings (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    subscriber_id BIGINT NOT NULL,
    type VARCHAR(8) NOT NULL CHECK (type IN ('cfu', 'cfb', 'cft', 'cfna')),
    destination_set_id BIGINT NOT NULL,
    time_set_id BIGINT,
    source_set_id BIGINT,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    FOREIGN KEY (subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE,
    FOREIGN KEY (destination_set_id) REFERENCES cf_destination_sets (id) ON DELETE CASCADE,
    FOREIGN KEY (time_set_id) REFERENCES cf_time_sets (id) ON DELETE CASCADE,
    FOREIGN KEY (source_set_id) REFERENCES cf_source_sets (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX cf_mappings_subscriber ON cf_mappings (subscriber_id, type);

CREATE TABLE admins (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    login VARCHAR(127) NOT NULL UNIQUE,
    password_hash VARCHAR(255) NOT NULL,
    is_superuser BOOLEAN NOT NULL DEFAULT 0,
    is_active BOOLEAN NOT NULL DEFAULT 1
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
