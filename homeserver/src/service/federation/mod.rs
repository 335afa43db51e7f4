//! The Server-Server API, as far as it exists: this server's identity for other servers (its
//! signing keys, its version, its delegation). Joining rooms across servers, transactions and the
//! rest of federation are not built yet: their endpoints answer `M_UNRECOGNIZED`.

pub mod server_keys;
