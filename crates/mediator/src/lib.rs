//! Mediation (`voxide mediator`): groups the proxy's accounting records by Call-ID and turns each
//! group into call detail records, exactly once.
