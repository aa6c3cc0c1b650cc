// Command layercheck proves whether a container image is intact and whether
// what a host has on disk is exactly what its registry serves.
//
// This package holds the kong command structs, the dispatch from arguments to
// sources, the output selection and the one table that maps outcomes to exit
// codes (exitcode.go).
package main
