//! e2e-tests: whole-system tests with real SIP peers (SIPp, baresip).
