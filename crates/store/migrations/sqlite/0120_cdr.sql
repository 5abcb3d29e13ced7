-- Mediation: call detail records made from acc rows, and where the acc rows go afterwards.
-- The mediator inserts a call's CDRs and moves its acc rows to acc_archive (or, for a group it
-- cannot read, to acc_trash with the reason) in one transaction, so every call is mediated
-- exactly once; cdr.acc_id (the INVITE row a CDR came from) is unique as a second guard.
-- Times are milliseconds since the Unix epoch (UTC). Column names match
-- migrations/mysql/0120_cdr.sql.

CREATE TABLE cdr (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    acc_id INTEGER NOT NULL UNIQUE,
    call_id TEXT NOT NULL,
    call_type TEXT NOT NULL DEFAULT 'call',
    call_status TEXT NOT NULL,
    call_code INTEGER NOT NULL,
    init_time_ms INTEGER NOT NULL,
    start_time_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    source_user_id TEXT,
    source_subscriber_id INTEGER,
    source_customer_id INTEGER,
    source_user TEXT NOT NULL DEFAULT '',
    source_domain TEXT NOT NULL DEFAULT '',
    source_cli TEXT NOT NULL DEFAULT '',
    source_ip TEXT NOT NULL DEFAULT '',
    destination_user_id TEXT,
    destination_subscriber_id INTEGER,
    destination_customer_id INTEGER,
    destination_user TEXT NOT NULL DEFAULT '',
    destination_domain TEXT NOT NULL DEFAULT '',
    destination_user_dialed TEXT NOT NULL DEFAULT '',
    destination_user_in TEXT NOT NULL DEFAULT '',
    destination_domain_in TEXT NOT NULL DEFAULT '',
    rating_status TEXT NOT NULL DEFAULT 'unrated',
    export_status TEXT NOT NULL DEFAULT 'unexported',
    exported_at_ms INTEGER,
    mediated_at_ms INTEGER NOT NULL
);
CREATE INDEX cdr_start ON cdr (start_time_ms);
CREATE INDEX cdr_source_subscriber ON cdr (source_subscriber_id, start_time_ms);
CREATE INDEX cdr_destination_subscriber ON cdr (destination_subscriber_id, start_time_ms);
CREATE INDEX cdr_source_customer ON cdr (source_customer_id, start_time_ms);
CREATE INDEX cdr_destination_customer ON cdr (destination_customer_id, start_time_ms);
CREATE INDEX cdr_status ON cdr (call_status, start_time_ms);
CREATE INDEX cdr_export ON cdr (export_status, id);
CREATE INDEX cdr_call_id ON cdr (call_id);

-- acc rows that became CDRs (C5's acc_backup); `id` is the row's id in acc.
CREATE TABLE acc_archive (
    id INTEGER PRIMARY KEY,
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
    time_ms INTEGER NOT NULL,
    source_user TEXT NOT NULL DEFAULT '',
    source_domain TEXT NOT NULL DEFAULT '',
    source_cli TEXT NOT NULL DEFAULT '',
    call_type TEXT NOT NULL DEFAULT 'call',
    archived_at_ms INTEGER NOT NULL
);
CREATE INDEX acc_archive_callid ON acc_archive (callid);

-- acc groups the mediator could not turn into CDRs, each row with the reason.
CREATE TABLE acc_trash (
    id INTEGER PRIMARY KEY,
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
    time_ms INTEGER NOT NULL,
    source_user TEXT NOT NULL DEFAULT '',
    source_domain TEXT NOT NULL DEFAULT '',
    source_cli TEXT NOT NULL DEFAULT '',
    call_type TEXT NOT NULL DEFAULT 'call',
    reason TEXT NOT NULL,
    trashed_at_ms INTEGER NOT NULL
);
CREATE INDEX acc_trash_callid ON acc_trash (callid);
