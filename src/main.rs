fn main() {
    println!("videovla");
}
