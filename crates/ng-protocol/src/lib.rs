//! ng-protocol
