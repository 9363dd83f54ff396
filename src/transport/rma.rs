//! The MPI one-sided transport (in progress).
