-- Mediation: call detail records made from acc rows, and where the acc rows go afterwards.
-- The mediator inserts a call's CDRs and moves its acc rows to acc_archive (or, for a group it
-- cannot read, to acc_trash with the reason) in one transaction, so every call is mediated
-- exactly once; cdr.acc_id (the INVITE row a CDR came from) is unique as a second guard.
-- Times are milliseconds since the Unix epoch (UTC). Column names match
-- migrations/sqlite/0120_cdr.sql.

CREATE TABLE cdr (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    acc_id BIGINT NOT NULL,
    call_id VARCHAR(255) NOT NULL,
    call_type VARCHAR(16) NOT NULL DEFAULT 'call',
    call_status VARCHAR(16) NOT NULL,
    call_code SMALLINT NOT NULL,
    init_time_ms BIGINT NOT NULL,
    start_time_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    source_user_id CHAR(36),
    source_subscriber_id BIGINT,
    source_customer_id BIGINT,
    source_user VARCHAR(255) NOT NULL DEFAULT '',
    source_domain VARCHAR(255) NOT NULL DEFAULT '',
    source_cli VARCHAR(255) NOT NULL DEFAULT '',
    source_ip VARCHAR(64) NOT NULL DEFAULT '',
    destination_user_id CHAR(36),
    destination_subscriber_id BIGINT,
    destination_customer_id BIGINT,
    destination_user VARCHAR(255) NOT NULL DEFAULT '',
    destination_domain VARCHAR(255) NOT NULL DEFAULT '',
    destination_user_dialed VARCHAR(255) NOT NULL DEFAULT '',
    destination_user_in VARCHAR(255) NOT NULL DEFAULT '',
    destination_domain_in VARCHAR(255) NOT NULL DEFAULT '',
    rating_status VARCHAR(16) NOT NULL DEFAULT 'unrated',
    export_status VARCHAR(16) NOT NULL DEFAULT 'unexported',
    exported_at_ms BIGINT,
    mediated_at_ms BIGINT NOT NULL,
    UNIQUE KEY cdr_acc (acc_id),
    KEY cdr_start (start_time_ms),
    KEY cdr_source_subscriber (source_subscriber_id, start_time_ms),
    KEY cdr_destination_subscriber (destination_subscriber_id, start_time_ms),
    KEY cdr_source_customer (source_customer_id, start_time_ms),
    KEY cdr_destination_customer (destination_customer_id, start_time_ms),
    KEY cdr_status (call_status, start_time_ms),
    KEY cdr_export (export_status, id),
    KEY cdr_call_id (call_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- acc rows that became CDRs (C5's acc_backup); `id` is the row's id in acc.
CREATE TABLE acc_archive (
    id BIGINT NOT NULL PRIMARY KEY,
    method VARCHAR(16) NOT NULL,
    from_tag VARCHAR(128) NOT NULL DEFAULT '',
    to_tag VARCHAR(128) NOT NULL DEFAULT '',
    callid VARCHAR(255) NOT NULL,
    sip_code SMALLINT NOT NULL,
    sip_reason VARCHAR(128) NOT NULL DEFAULT '',
    source_user_id CHAR(36),
    destination_user_id CHAR(36),
    source_ip VARCHAR(64) NOT NULL DEFAULT '',
    destination_user VARCHAR(255) NOT NULL DEFAULT '',
    destination_domain VARCHAR(255) NOT NULL DEFAULT '',
    time_ms BIGINT NOT NULL,
    source_user VARCHAR(255) NOT NULL DEFAULT '',
    source_domain VARCHAR(255) NOT NULL DEFAULT '',
    source_cli VARCHAR(255) NOT NULL DEFAULT '',
    call_type VARCHAR(16) NOT NULL DEFAULT 'call',
    archived_at_ms BIGINT NOT NULL,
    KEY acc_archive_callid (callid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- acc groups the mediator could not turn into CDRs, each row with the reason.
CREATE TABLE acc_trash (
    id BIGINT NOT NULL PRIMARY KEY,
    method VARCHAR(16) NOT NULL,
    from_tag VARCHAR(128) NOT NULL DEFAULT '',
    to_tag VARCHAR(128) NOT NULL DEFAULT '',
    callid VARCHAR(255) NOT NULL,
    sip_code SMALLINT NOT NULL,
    sip_reason VARCHAR(128) NOT NULL DEFAULT '',
    source_user_id CHAR(36),
    destination_user_id CHAR(36),
    source_ip VARCHAR(64) NOT NULL DEFAULT '',
    destination_user VARCHAR(255) NOT NULL DEFAULT '',
    destination_domain VARCHAR(255) NOT NULL DEFAULT '',
    time_ms BIGINT NOT NULL,
    source_user VARCHAR(255) NOT NULL DEFAULT '',
    source_domain VARCHAR(255) NOT NULL DEFAULT '',
    source_cli VARCHAR(255) NOT NULL DEFAULT '',
    call_type VARCHAR(16) NOT NULL DEFAULT 'call',
    reason VARCHAR(512) NOT NULL,
    trashed_at_ms BIGINT NOT NULL,
    KEY acc_trash_callid (callid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
