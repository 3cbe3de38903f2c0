// Command bcrypt reads passwords from stdin, one a line, and prints their bcrypt hashes
// (cost 11), one a line, in the form nats-server accepts as a user's password. Used by
// deploy/lockdown.sh at first start so clear-text passwords never reach a server config.
package main

import (
	"bufio"
	"fmt"
	"os"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		hash, err := bcrypt.GenerateFromPassword(in.Bytes(), 11)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bcrypt:", err)
			os.Exit(1)
		}
		fmt.Println(string(hash))
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "bcrypt:", err)
		os.Exit(1)
	}
}
