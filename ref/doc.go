// Package ref owns image references and platforms for all of layercheck:
// parsing and normalising names (nginx -> docker.io/library/nginx:latest),
// their familiar form (as Docker's repositories.json writes them), matching a
// user's selector (a name, name:tag, name@digest, an image ID or a unique ID
// prefix) against what a store or source names, and parsing and matching
// os/arch[/variant] platforms. regclient's types/ref is the model: one type,
// one parser, used by every package instead of local string surgery.
//
// Parsing is go-containerregistry's name package (the registry client uses it
// too, so both agree on what a reference means); this package adds the
// selector and platform rules layercheck's commands share. It does no I/O.
package ref
