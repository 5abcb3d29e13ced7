-- Digest algorithms the proxy challenges with, per domain, customer or subscriber. Unset: the
-- proxy's `digest_algorithms` setting (MD5 by default, which every phone answers). SHA-256 is
-- refused by some phones in the field: baresip 1.0 gives up on any 401 carrying a SHA-256
-- challenge, SIPp 3.6 reads only the first challenge and knows only MD5, sipvicious crashes.
INSERT INTO preference_definitions
    (name, data_type, description, default_value, enum_values, min_value, max_value,
     domain_pref, customer_pref, subscriber_pref, peer_pref)
VALUES
    ('digest_algorithms', 'enum',
     'Digest algorithms offered in 401/407 challenges, in this order; unset = the proxy setting (MD5). baresip 1.0 and SIPp 3.6 fail on SHA-256.',
     NULL, '["MD5","SHA-256","SHA-256,MD5","MD5,SHA-256"]', NULL, NULL, 1, 1, 1, 0);
