// binaccel fast path: a Verilator model of a stream design driven from files, no per-cycle Python.
//
// Built by binaccel.sim.fastpath (see docs/simulation.md); the port accessors come from the generated
// "fastpath_ports.h". Command line (all numbers decimal):
//   <exe> --n-out N --out FILE [--in0 FILE --in1 FILE ...] [--idle P] [--bp P] [--seed S]
//         [--max-cycles M] [--reset-cycles R] [--extra-cycles K] [--stamps FILE] [--reset-at C]
//   <exe> --batch FILE --out FILE [--stamps FILE] [any of the options above as defaults]
// Input files hold the words of input stream i back to back, FP_IN_BYTES[i] little-endian bytes each.
// The output file receives the output words the same way (FP_OUT_BYTES each), the stamps file one
// little-endian uint64 per output word: the cycle (rising edge after reset, 1-based) of its transfer.
// The last line on stdout is a JSON object with the run's figures. Exit status: 0 ok, 3 cycle limit
// reached before N outputs (outputs so far are still written), 2 bad usage or input.
//
// --reset-at C: at cycle C (1-based, counted like the stamps) of a run that has not yet received its
// N outputs, reset is asserted for R cycles (inputs not valid, output not ready), then every input
// stream starts again from its first word and the outputs so far are discarded (a clean rerun; the
// cycle count and the stamps go on counting from the first run). The result line says whether the
// reset happened ("reset"), at which cycle, and how many words had moved before it.
//
// --batch FILE: many runs in one process, one per line of FILE; a line holds options of the form
// above (whitespace-separated, no --out/--stamps/--batch), taking the command line's as defaults.
// Each run gets a fresh model; input files are read once. Every run's output words (and stamps) are
// appended to the command line's --out (--stamps) file in run order, and one JSON result line per
// run is printed, in order. Exit status 0, or 3 if any run reached its cycle limit.
//
// Stream rules: a word transfers at a rising edge where valid and ready are high; an input stream,
// once valid, keeps valid and payload until the transfer. Before each input word, idle cycles are
// inserted with probability P each (payload random while idle); ready of the output is low with
// probability P (backpressure) each cycle. All randomness comes from splitmix64 seeded with S.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

// ---- signal access, little-endian byte buffers of nbytes (upper bits beyond the width are zero) ----
template <typename T>
static inline void fp_set(T& sig, const uint8_t* b, size_t nbytes) {
    uint64_t v = 0;
    std::memcpy(&v, b, nbytes);
    sig = static_cast<T>(v);
}
template <std::size_t N>
static inline void fp_set(VlWide<N>& sig, const uint8_t* b, size_t nbytes) {
    for (size_t i = 0; i < N; ++i) {
        uint32_t w = 0;
        if (4 * i < nbytes) std::memcpy(&w, b + 4 * i, std::min<size_t>(4, nbytes - 4 * i));
        sig[i] = w;
    }
}
template <typename T>
static inline void fp_get(const T& sig, uint8_t* b, size_t nbytes) {
    uint64_t v = static_cast<uint64_t>(sig);
    std::memcpy(b, &v, nbytes);
}
template <std::size_t N>
static inline void fp_get(const VlWide<N>& sig, uint8_t* b, size_t nbytes) {
    for (size_t i = 0; i < N && 4 * i < nbytes; ++i) {
        uint32_t w = sig[i];
        std::memcpy(b + 4 * i, &w, std::min<size_t>(4, nbytes - 4 * i));
    }
}

#include "fastpath_ports.h"

// ---- randomness ----
struct SplitMix64 {
    uint64_t s;
    explicit SplitMix64(uint64_t seed) : s(seed) {}
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
};

static void die(const char* msg, const char* arg = "") {
    std::fprintf(stderr, "fastpath: %s%s\n", msg, arg);
    std::exit(2);
}

static std::vector<uint8_t> read_file(const std::string& path) {
    std::vector<uint8_t> data;
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) die("cannot open input file ", path.c_str());
    uint8_t buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.insert(data.end(), buf, buf + n);
    std::fclose(f);
    return data;
}

static void write_file(const std::string& path, const uint8_t* data, size_t n) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) die("cannot open output file ", path.c_str());
    if (n && std::fwrite(data, 1, n, f) != n) die("short write to ", path.c_str());
    if (std::fclose(f) != 0) die("cannot close ", path.c_str());
}

static uint64_t parse_u64(const char* s, const char* what) {
    char* end;
    errno = 0;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (errno || *end || !*s) die("bad number for ", what);
    return v;
}

static double parse_prob(const char* s, const char* what) {
    char* end;
    double v = std::strtod(s, &end);
    if (*end || !*s || !(v >= 0.0 && v < 1.0)) die("probability must be in [0, 1) for ", what);
    return v;
}

struct RunOpts {
    uint64_t n_out = 0, seed = 0, max_cycles = 1000000, reset_cycles = 2, extra_cycles = 0, reset_at = 0;
    bool have_n_out = false;
    double idle = 0.0, bp = 0.0;
    std::string out_path, stamps_path, batch_path;
    std::vector<std::string> in_paths = std::vector<std::string>(FP_N_IN);
    std::vector<bool> have_in = std::vector<bool>(FP_N_IN, false);
};

// Parses argv[first..argc) into o; in a batch line (batch_line) --out, --stamps and --batch are refused.
static void parse_opts(int argc, char** argv, int first, RunOpts& o, bool batch_line) {
    for (int a = first; a < argc; ++a) {
        std::string opt = argv[a];
        if (a + 1 >= argc) die("missing value after ", argv[a]);
        const char* v = argv[++a];
        if (batch_line && (opt == "--out" || opt == "--stamps" || opt == "--batch"))
            die("not allowed in a batch line: ", opt.c_str());
        if (opt == "--n-out") { o.n_out = parse_u64(v, "--n-out"); o.have_n_out = true; }
        else if (opt == "--out") o.out_path = v;
        else if (opt == "--stamps") o.stamps_path = v;
        else if (opt == "--batch") o.batch_path = v;
        else if (opt == "--idle") o.idle = parse_prob(v, "--idle");
        else if (opt == "--bp") o.bp = parse_prob(v, "--bp");
        else if (opt == "--seed") o.seed = parse_u64(v, "--seed");
        else if (opt == "--max-cycles") o.max_cycles = parse_u64(v, "--max-cycles");
        else if (opt == "--reset-cycles") o.reset_cycles = parse_u64(v, "--reset-cycles");
        else if (opt == "--extra-cycles") o.extra_cycles = parse_u64(v, "--extra-cycles");
        else if (opt == "--reset-at") o.reset_at = parse_u64(v, "--reset-at");
        else if (opt.rfind("--in", 0) == 0) {
            int i = (int)parse_u64(opt.c_str() + 4, "--inN");
            if (i < 0 || i >= FP_N_IN) die("no such input stream: ", opt.c_str());
            o.in_paths[i] = v;
            o.have_in[i] = true;
        } else die("unknown option ", opt.c_str());
    }
}

struct Output {
    std::vector<uint8_t> data;
    std::vector<uint64_t> stamps;
};

// Input files by path, read once per process (std::map: references stay valid as it grows).
typedef std::map<std::string, std::vector<uint8_t>> InputCache;
static const std::vector<uint8_t>& input_data(InputCache& cache, const std::string& path) {
    auto it = cache.find(path);
    if (it == cache.end()) it = cache.emplace(path, read_file(path)).first;
    return it->second;
}

// One run: reset, stream, optionally a reset at o.reset_at and a rerun. Appends the run's output words
// and stamps to out, prints the result line; returns true on a timeout.
static bool run_one(const RunOpts& o, InputCache& cache, Output& out) {
    const uint64_t n_out = o.n_out, max_cycles = o.max_cycles, reset_cycles = o.reset_cycles;
    const uint64_t extra_cycles = o.extra_cycles, reset_at = o.reset_at;
    const double idle = o.idle, bp = o.bp;
    // ---- inputs ----
    static const std::vector<uint8_t> none;
    std::vector<const std::vector<uint8_t>*> in_data(FP_N_IN, &none);
    std::vector<uint64_t> in_n(FP_N_IN, 0), in_k(FP_N_IN, 0);
    for (int i = 0; i < FP_N_IN; ++i) {
        if (!o.have_in[i]) continue;  // no words for this stream
        in_data[i] = &input_data(cache, o.in_paths[i]);
        size_t nb = FP_IN_BYTES[i];
        if (nb == 0) die("input stream has no payload; give no file: ", o.in_paths[i].c_str());
        if (in_data[i]->size() % nb) die("input file size is not a multiple of the word size: ", o.in_paths[i].c_str());
        in_n[i] = in_data[i]->size() / nb;
    }

    const size_t ob = FP_OUT_BYTES;
    std::vector<uint8_t> out_data;
    out_data.reserve((size_t)std::min<uint64_t>(n_out, 1u << 24) * (ob ? ob : 1));
    std::vector<uint64_t> stamps;
    uint64_t n_got = 0, n_extra = 0;
    size_t max_ib = 0;
    for (int i = 0; i < FP_N_IN; ++i) max_ib = std::max<size_t>(max_ib, FP_IN_BYTES[i]);
    std::vector<uint8_t> obuf(ob + 8, 0), gbuf(max_ib + 8, 0);

    std::vector<SplitMix64> in_rng;
    for (int i = 0; i < FP_N_IN; ++i) in_rng.emplace_back(o.seed * 0x100000001B3ull + 2 * i + 1);
    SplitMix64 out_rng(o.seed * 0x100000001B3ull + 0xABCDEFull);

    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vtop>(ctx.get(), "top");

    auto do_reset = [&]() {
        for (int i = 0; i < FP_N_IN; ++i) fp_in_set_valid(top.get(), i, 0);
        fp_out_set_ready(top.get(), 0);
        FP_SET_RST(top.get(), 1);
        top->FP_CLK = 0;
        top->eval();
        for (uint64_t c = 0; c < reset_cycles; ++c) {
            top->FP_CLK = 1; ctx->timeInc(1); top->eval();
            top->FP_CLK = 0; ctx->timeInc(1); top->eval();
        }
        FP_SET_RST(top.get(), 0);
    };
    do_reset();

    // ---- run ----
    std::vector<bool> presenting(FP_N_IN, false), fire(FP_N_IN, false);
    uint64_t cycle = 0, stop_at = 0, reset_cycle = 0, out_before_reset = 0;
    std::vector<uint64_t> in_before_reset(FP_N_IN, 0);
    bool done = (n_out == 0), timeout = false, reset_done = false;
    if (done) stop_at = extra_cycles;
    auto t0 = std::chrono::steady_clock::now();
    while (!(done && cycle >= stop_at)) {
        if (!done && cycle >= max_cycles) { timeout = true; break; }
        if (!done && !reset_done && reset_at && cycle + 1 == reset_at) {
            // a reset in the middle of the run, then a clean rerun from the first word
            reset_done = true;
            reset_cycle = reset_at;
            out_before_reset = n_got;
            for (int i = 0; i < FP_N_IN; ++i) { in_before_reset[i] = in_k[i]; in_k[i] = 0; presenting[i] = false; }
            n_got = 0;
            out_data.clear();
            stamps.clear();
            do_reset();
        }
        for (int i = 0; i < FP_N_IN; ++i) {
            if (presenting[i]) continue;
            if (in_k[i] < in_n[i] && !(idle > 0.0 && in_rng[i].uniform() < idle)) {
                presenting[i] = true;
                fp_in_set_payload(top.get(), i, &(*in_data[i])[in_k[i] * FP_IN_BYTES[i]]);
                fp_in_set_valid(top.get(), i, 1);
            } else {
                fp_in_set_valid(top.get(), i, 0);
                if (FP_IN_BYTES[i]) {  // random payload while idle
                    for (size_t j = 0; j < FP_IN_BYTES[i]; j += 8) {
                        uint64_t r = in_rng[i].next();
                        std::memcpy(&gbuf[j], &r, 8);
                    }
                    if (FP_IN_BITS[i] % 8) gbuf[FP_IN_BYTES[i] - 1] &= (uint8_t)((1u << (FP_IN_BITS[i] % 8)) - 1);
                    fp_in_set_payload(top.get(), i, gbuf.data());
                }
            }
        }
        int ready = done ? 1 : !(bp > 0.0 && out_rng.uniform() < bp);
        fp_out_set_ready(top.get(), ready);
        top->FP_CLK = 0;
        top->eval();
        for (int i = 0; i < FP_N_IN; ++i) fire[i] = presenting[i] && fp_in_get_ready(top.get(), i);
        bool out_fire = ready && fp_out_get_valid(top.get());
        if (out_fire && !done) fp_out_get_payload(top.get(), obuf.data());
        top->FP_CLK = 1;
        ctx->timeInc(1);
        top->eval();
        ctx->timeInc(1);
        ++cycle;
        for (int i = 0; i < FP_N_IN; ++i)
            if (fire[i]) { presenting[i] = false; ++in_k[i]; }
        if (out_fire) {
            if (done) {
                ++n_extra;
            } else {
                out_data.insert(out_data.end(), obuf.begin(), obuf.begin() + ob);
                stamps.push_back(cycle);
                if (++n_got == n_out) { done = true; stop_at = cycle + extra_cycles; }
            }
        }
    }
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    top->final();

    out.data.insert(out.data.end(), out_data.begin(), out_data.end());
    out.stamps.insert(out.stamps.end(), stamps.begin(), stamps.end());
    uint64_t last = stamps.empty() ? 0 : stamps.back();
    std::printf("{\"cycles\": %" PRIu64 ", \"last_out_cycle\": %" PRIu64 ", \"n_out\": %" PRIu64
                ", \"n_extra\": %" PRIu64 ", \"timeout\": %s, \"wall_s\": %.6f, \"in_consumed\": [",
                cycle, last, n_got, n_extra, timeout ? "true" : "false", wall);
    for (int i = 0; i < FP_N_IN; ++i) std::printf("%s%" PRIu64, i ? ", " : "", in_k[i]);
    std::printf("], \"in_total\": [");
    for (int i = 0; i < FP_N_IN; ++i) std::printf("%s%" PRIu64, i ? ", " : "", in_n[i]);
    std::printf("], \"reset\": %s, \"reset_cycle\": %" PRIu64 ", \"out_before_reset\": %" PRIu64
                ", \"in_before_reset\": [", reset_done ? "true" : "false", reset_cycle, out_before_reset);
    for (int i = 0; i < FP_N_IN; ++i) std::printf("%s%" PRIu64, i ? ", " : "", in_before_reset[i]);
    std::printf("]}\n");
    return timeout;
}

// Splits a batch line into whitespace-separated tokens.
static std::vector<std::string> split_line(const std::string& line) {
    std::vector<std::string> tok;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && std::isspace((unsigned char)line[i])) ++i;
        size_t j = i;
        while (j < line.size() && !std::isspace((unsigned char)line[j])) ++j;
        if (j > i) tok.push_back(line.substr(i, j - i));
        i = j;
    }
    return tok;
}

int main(int argc, char** argv) {
    RunOpts base;
    parse_opts(argc, argv, 1, base, false);
    if (base.out_path.empty()) die("--out is required");
    InputCache cache;
    Output out;
    bool any_timeout = false;
    if (base.batch_path.empty()) {
        if (!base.have_n_out) die("--n-out and --out are required");
        any_timeout = run_one(base, cache, out);
    } else {
        std::vector<uint8_t> text = read_file(base.batch_path);
        std::string s(text.begin(), text.end());
        size_t pos = 0;
        while (pos < s.size()) {
            size_t nl = s.find('\n', pos);
            if (nl == std::string::npos) nl = s.size();
            std::vector<std::string> tok = split_line(s.substr(pos, nl - pos));
            pos = nl + 1;
            if (tok.empty()) continue;
            std::vector<char*> av;
            for (auto& t : tok) av.push_back(&t[0]);
            RunOpts o = base;
            parse_opts((int)av.size(), av.data(), 0, o, true);
            if (!o.have_n_out) die("a batch line has no --n-out");
            any_timeout |= run_one(o, cache, out);
            std::fflush(stdout);
        }
    }
    write_file(base.out_path, out.data.data(), out.data.size());
    if (!base.stamps_path.empty())
        write_file(base.stamps_path, reinterpret_cast<const uint8_t*>(out.stamps.data()), out.stamps.size() * 8);
    return any_timeout ? 3 : 0;
}
