//! The identity lifecycle: HR as the source of truth (`hr`, `hr_plan`),
//! birthright rules (`birthright`), the jobs a user's dates call for
//! (`schedule`), what a leaver loses (`leaver`), the handlers that run when
//! those jobs come due (`dates`), and the tenant's lifecycle settings.
//!
//! Access never depends on a job having run: `Principal::is_active_at`
//! already refuses a user before their start date and from their end date.
//! The jobs do the clean-up, the notices and the evidence.

pub mod birthright;
pub mod dates;
pub mod hr;
pub mod hr_plan;
pub mod leaver;
pub mod schedule;
pub mod settings;

pub use leaver::{LeaverCause, LeaverOutcome, LeaverReason};
pub(crate) use leaver::{stage_leaver, stage_user_change};
pub(crate) use schedule::schedule_user_jobs;
pub use settings::LifecycleSettings;
