//! `sqlx::migrate!` embeds the migration folders at compile time; without
//! this, cargo would not rebuild when a migration is added.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
