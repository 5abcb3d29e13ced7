-- The registrar's location service: one row per binding of a contact to an address-of-record
-- (RFC 3261 §10.3). Written before the 200 OK goes out so that registrations survive a restart.
-- path holds the Path header URIs (RFC 3327) as a JSON array of strings, topmost first.
CREATE TABLE location (
    domain TEXT NOT NULL,
    username TEXT NOT NULL,
    contact TEXT NOT NULL,
    q INTEGER NOT NULL DEFAULT 1000,
    expires_at INTEGER NOT NULL,
    path TEXT NOT NULL DEFAULT '[]',
    received TEXT,
    call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL,
    user_agent TEXT,
    instance TEXT,
    reg_id INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (domain, username, contact)
);
CREATE INDEX location_expires_at ON location (expires_at);
