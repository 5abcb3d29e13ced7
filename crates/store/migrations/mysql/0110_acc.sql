-- Accounting records written by the proxy (the `acc` table of Kamailio's acc module, which the
-- mediator turns into CDRs): one row per INVITE with its final response (start, or a failed
-- call), one per BYE with its 2xx (stop). Column names match migrations/sqlite/0110_acc.sql.

CREATE TABLE acc (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
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
    KEY acc_callid (callid),
    KEY acc_time (time_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
