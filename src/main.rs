//! The `qfault` command line: a thin layer over the library.

fn main() {
    println!("qfault: under construction");
}
