//! Tessera: a self-hosted SAML and WS-Federation identity provider with LDAP sign-in and an MFA adapter.

pub mod admin;
pub mod audit;
pub mod clock;
pub mod config;
pub mod directory;
pub mod i18n;
pub mod keys;
pub mod login;
pub mod metrics;
pub mod mfa;
pub mod portal;
pub mod rp;
pub mod saml;
pub mod server;
pub mod sessions;
pub mod shutdown;
pub mod sim;
pub mod startup;
pub mod store;
pub mod tls;
pub mod web;
pub mod wsfed;
pub mod xml;
pub mod xmldsig;

pub use web::{AppState, app};
