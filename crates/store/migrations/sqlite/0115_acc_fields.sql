-- Caller leg fields the CDR needs and the first acc schema lacked: the From user and host as the
-- caller sent them, the calling line identity (the P-Asserted-Identity user, else the From
-- user) and the call type (`call`; forwards will write `cfu`, `cfb`, `cft`, `cfna`).
-- Column names match migrations/mysql/0115_acc_fields.sql.

ALTER TABLE acc ADD COLUMN source_user TEXT NOT NULL DEFAULT '';
ALTER TABLE acc ADD COLUMN source_domain TEXT NOT NULL DEFAULT '';
ALTER TABLE acc ADD COLUMN source_cli TEXT NOT NULL DEFAULT '';
ALTER TABLE acc ADD COLUMN call_type TEXT NOT NULL DEFAULT 'call';
