//! Shared fixtures for the integration tests that include them as `mod support;`.

#![allow(dead_code)]

pub mod slapd;
