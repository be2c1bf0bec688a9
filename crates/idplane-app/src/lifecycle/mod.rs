//! The identity lifecycle driven by HR: birthright rules, the HR import
//! (joiners, movers, leavers, rehires) and the leavers report.

pub mod birthright;
pub mod hr;
pub mod hr_plan;
