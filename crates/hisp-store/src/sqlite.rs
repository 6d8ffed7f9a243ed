//! The SQLite implementation (being written).
