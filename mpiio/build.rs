//! Gives the interposition library its installed soname and rebuilds it when the MPI compiler
//! wrapper changes (`$MPICC`: the MPI library `mpi-sys` builds against).

fn main() {
    println!("cargo:rerun-if-env-changed=MPICC");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbrlock-mpiio.so");
}
