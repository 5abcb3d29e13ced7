-- Caller leg fields the CDR needs and the first acc schema lacked: the From user and host as the
-- caller sent them, the calling line identity (the P-Asserted-Identity user, else the From
-- user) and the call type (`call`; forwards will write `cfu`, `cfb`, `cft`, `cfna`).
-- Column names match migrations/sqlite/0115_acc_fields.sql.

ALTER TABLE acc
    ADD COLUMN source_user VARCHAR(255) NOT NULL DEFAULT '',
    ADD COLUMN source_domain VARCHAR(255) NOT NULL DEFAULT '',
    ADD COLUMN source_cli VARCHAR(255) NOT NULL DEFAULT '',
    ADD COLUMN call_type VARCHAR(16) NOT NULL DEFAULT 'call';
