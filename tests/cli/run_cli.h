// Runs the real `convkit` binary for end-to-end tests, capturing its exit status, stdout and
// stderr.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace convkit::testing {

struct CliResult {
  int status = -1;  // exit status, or -1 when killed by a signal
  std::string out, err;
};

// A fresh, empty directory for one test: $CONVKIT_TEST_TMP/<name>.
inline std::filesystem::path test_dir(const std::string& name) {
  const char* env = std::getenv("CONVKIT_TEST_TMP");
#ifdef CONVKIT_TEST_TMP
  std::filesystem::path root = env ? env : CONVKIT_TEST_TMP;
#else
  std::filesystem::path root = env ? env : std::filesystem::temp_directory_path() / "convkit-tests";
#endif
  const auto dir = root / (name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `convkit args...` with stdin from /dev/null.
inline CliResult run_cli(const std::vector<std::string>& args) {
  const auto dir = test_dir("cli-run");
  std::string cmd = shell_quote(CONVKIT_CLI_PATH);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " </dev/null >" + shell_quote((dir / "out").string()) + " 2>" +
         shell_quote((dir / "err").string());
  CliResult r;
  const int raw = std::system(cmd.c_str());
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_text(dir / "out");
  r.err = read_text(dir / "err");
  std::filesystem::remove_all(dir);
  return r;
}

}  // namespace convkit::testing
