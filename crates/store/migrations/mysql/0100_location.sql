-- The registrar's location service: one row per binding of a contact to an address-of-record
-- (RFC 3261 §10.3). Written before the 200 OK goes out so that registrations survive a restart.
-- path holds the Path header URIs (RFC 3327) as a JSON array of strings, topmost first.
-- Key widths (127 + 127 + 512 characters of utf8mb4) stay inside InnoDB's 3072-byte index limit;
-- 512 is also Kamailio's location.contact width.
CREATE TABLE location (
    domain VARCHAR(127) NOT NULL,
    username VARCHAR(127) NOT NULL,
    contact VARCHAR(512) NOT NULL,
    q BIGINT NOT NULL DEFAULT 1000,
    expires_at BIGINT NOT NULL,
    path TEXT NOT NULL,
    received VARCHAR(512),
    call_id VARCHAR(255) NOT NULL,
    cseq BIGINT NOT NULL,
    user_agent VARCHAR(255),
    instance VARCHAR(255),
    reg_id BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (domain, username, contact)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX location_expires_at ON location (expires_at);
