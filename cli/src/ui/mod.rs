//! Presentation: the `-o` formats, tables and times for people, and errors as the one line a person
//! reads. Depends on no other layer.

pub mod errors;
pub mod format;
pub mod table;
pub mod time;
