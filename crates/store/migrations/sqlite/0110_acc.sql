-- Accounting records written by the proxy (the `acc` table of Kamailio's acc module, which the
-- mediator turns into CDRs): one row per INVITE with its final response (start, or a failed
-- call), one per BYE with its 2xx (stop). Column names match migrations/mysql/0110_acc.sql.

CREATE TABLE acc (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    method TEXT NOT NULL,
    from_tag TEXT NOT NULL DEFAULT '',
    to_tag TEXT NOT NULL DEFAULT '',
    callid TEXT NOT NULL,
    sip_code INTEGER NOT NULL,
    sip_reason TEXT NOT NULL DEFAULT '',
    source_user_id TEXT,
    destination_user_id TEXT,
    source_ip TEXT NOT NULL DEFAULT '',
    destination_user TEXT NOT NULL DEFAULT '',
    destination_domain TEXT NOT NULL DEFAULT '',
    time_ms INTEGER NOT NULL
);
CREATE INDEX acc_callid ON acc (callid);
CREATE INDEX acc_time ON acc (time_ms);
