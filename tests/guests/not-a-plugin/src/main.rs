//! An ordinary WASI command component: a valid component of another world.

fn main() {
    println!("I am not a checkhost plugin");
}
