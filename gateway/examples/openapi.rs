//! Prints the OpenAPI document `GET /v1/openapi.json` serves, without a running stack:
//! `cargo run -q -p gateway --example openapi > web/openapi.json` (what `npm run gen:api` in
//! `web/` runs before generating `web/src/api-types.ts` from it).

fn main() {
    let document = gateway::openapi::document()
        .to_pretty_json()
        .expect("the OpenAPI document serializes to JSON");
    println!("{document}");
}
