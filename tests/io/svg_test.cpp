// The SVG loss plot: well-formed XML (checked by a minimal parser written here), one <polyline>
// with one point per finite value, points inside the plot area and in the right order, escaped
// labels.
#include <convkit/error.h>
#include <convkit/plot.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace convkit {
namespace {

struct Element {
  std::string name;
  std::map<std::string, std::string> attrs;
  std::string text;  // character data directly inside (entities decoded)
};

// A minimal XML 1.0 parser for what an SVG writer emits: prolog, elements, attributes in double or
// single quotes, character data with the five predefined entities. Fails the test (and returns
// false) on anything malformed: unbalanced or crossed tags, unquoted or duplicate attributes, raw
// '<' or '&' in text, a bad entity, text after the root.
class MiniXml {
 public:
  explicit MiniXml(std::string s) : s_(std::move(s)) {}

  bool parse(std::vector<Element>& out) {
    skip_space();
    if (s_.compare(i_, 5, "<?xml") == 0) {
      const size_t end = s_.find("?>", i_);
      if (end == std::string::npos) return fail("unterminated prolog");
      i_ = end + 2;
    }
    skip_space();
    if (!element(out)) return false;
    skip_space();
    if (i_ != s_.size()) return fail("content after the root element");
    return true;
  }
  std::string error;

 private:
  bool fail(const std::string& why) {
    error = why + " at offset " + std::to_string(i_);
    return false;
  }
  void skip_space() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool name(std::string& n) {
    const size_t start = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '-' ||
                              s_[i_] == ':' || s_[i_] == '_' || s_[i_] == '.'))
      ++i_;
    n = s_.substr(start, i_ - start);
    return !n.empty() && !std::isdigit(static_cast<unsigned char>(n[0]));
  }
  bool chars(char stop, std::string& out) {  // text up to `stop`, decoding entities
    while (i_ < s_.size() && s_[i_] != stop) {
      if (s_[i_] == '<') return fail("raw '<' in text");
      if (s_[i_] == '&') {
        static const std::pair<const char*, char> entities[] = {
            {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        bool ok = false;
        for (const auto& [e, c] : entities)
          if (s_.compare(i_, std::strlen(e), e) == 0) {
            out += c;
            i_ += std::strlen(e);
            ok = true;
            break;
          }
        if (!ok) return fail("bad entity");
        continue;
      }
      out += s_[i_++];
    }
    return true;
  }
  bool element(std::vector<Element>& out) {
    if (i_ >= s_.size() || s_[i_] != '<') return fail("expected '<'");
    ++i_;
    Element e;
    if (!name(e.name)) return fail("bad element name");
    while (true) {
      skip_space();
      if (i_ >= s_.size()) return fail("unterminated tag");
      if (s_.compare(i_, 2, "/>") == 0) {
        i_ += 2;
        out.push_back(e);
        return true;
      }
      if (s_[i_] == '>') {
        ++i_;
        break;
      }
      std::string attr, value;
      if (!name(attr)) return fail("bad attribute name");
      skip_space();
      if (i_ >= s_.size() || s_[i_] != '=') return fail("attribute without '='");
      ++i_;
      skip_space();
      if (i_ >= s_.size() || (s_[i_] != '"' && s_[i_] != '\'')) return fail("unquoted attribute");
      const char q = s_[i_++];
      if (!chars(q, value)) return false;
      if (i_ >= s_.size()) return fail("unterminated attribute");
      ++i_;
      if (e.attrs.count(attr)) return fail("duplicate attribute " + attr);
      e.attrs[attr] = value;
    }
    const size_t self = out.size();
    out.push_back(e);
    while (true) {
      std::string text;
      if (!chars('<', text)) return false;
      out[self].text += text;
      if (i_ >= s_.size()) return fail("unclosed <" + e.name + ">");
      if (s_.compare(i_, 2, "</") == 0) {
        i_ += 2;
        std::string closing;
        if (!name(closing) || closing != e.name)
          return fail("</" + closing + "> closes <" + e.name + ">");
        skip_space();
        if (i_ >= s_.size() || s_[i_] != '>') return fail("bad closing tag");
        ++i_;
        return true;
      }
      if (!element(out)) return false;
    }
  }
  std::string s_;
  size_t i_ = 0;
};

std::vector<Element> parse_ok(const std::string& svg) {
  std::vector<Element> elements;
  MiniXml xml(svg);
  EXPECT_TRUE(xml.parse(elements)) << xml.error << "\n" << svg;
  return elements;
}

std::vector<std::pair<double, double>> points_of(const Element& polyline) {
  std::vector<std::pair<double, double>> pts;
  std::istringstream in(polyline.attrs.at("points"));
  std::string pair;
  while (in >> pair) {
    const size_t comma = pair.find(',');
    EXPECT_NE(comma, std::string::npos) << pair;
    pts.emplace_back(std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1)));
  }
  return pts;
}

std::vector<const Element*> named(const std::vector<Element>& els, const std::string& n) {
  std::vector<const Element*> out;
  for (const auto& e : els)
    if (e.name == n) out.push_back(&e);
  return out;
}

TEST(Svg, WellFormedWithOnePolylineOfEveryPoint) {
  std::vector<double> loss;
  for (int i = 0; i < 37; ++i) loss.push_back(10.0 * std::exp(-0.2 * i) + 0.01);
  LinePlotOptions o;
  o.title = "training loss";
  const auto els = parse_ok(line_plot_svg(loss, o));
  ASSERT_FALSE(els.empty());
  EXPECT_EQ(els[0].name, "svg");
  EXPECT_EQ(els[0].attrs.at("xmlns"), "http://www.w3.org/2000/svg");
  const auto polylines = named(els, "polyline");
  ASSERT_EQ(polylines.size(), 1u);
  const auto pts = points_of(*polylines[0]);
  ASSERT_EQ(pts.size(), loss.size());
  // x increases with the epoch; a falling loss goes down the page (SVG y grows downward).
  for (size_t i = 1; i < pts.size(); ++i) {
    EXPECT_GT(pts[i].first, pts[i - 1].first);
    EXPECT_GT(pts[i].second, pts[i - 1].second);
  }
  for (const auto& [x, y] : pts) {
    EXPECT_GE(x, 0);
    EXPECT_LE(x, 640);
    EXPECT_GE(y, 0);
    EXPECT_LE(y, 400);
  }
  // Title, both axis labels and numeric tick labels are there as text.
  std::vector<std::string> texts;
  for (const Element* t : named(els, "text")) texts.push_back(t->text);
  auto has = [&](const std::string& s) {
    return std::find(texts.begin(), texts.end(), s) != texts.end();
  };
  EXPECT_TRUE(has("training loss"));
  EXPECT_TRUE(has("epoch"));
  EXPECT_TRUE(has("loss"));
  EXPECT_TRUE(has("0"));                     // y axis from 0
  EXPECT_TRUE(has("10"));                    // x tick and y tick
  EXPECT_GE(named(els, "line").size(), 6u);  // axes and ticks
}

TEST(Svg, LogAxisExplicitXAndNonFinitePointsLeftOut) {
  const std::vector<double> y = {1.0, 0.1, NAN, 0.01, 0.0, 0.001};
  LinePlotOptions o;
  o.log_y = true;
  o.x = {0, 2, 4, 6, 8, 10};
  const auto els = parse_ok(line_plot_svg(y, o));
  const auto pts = points_of(*named(els, "polyline").at(0));
  ASSERT_EQ(pts.size(), 4u);  // NaN and 0 (not on a log axis) are left out
  // On a log axis equal ratios are equal steps.
  EXPECT_NEAR(pts[1].second - pts[0].second, pts[2].second - pts[1].second, 0.02);
  std::vector<std::string> texts;
  for (const Element* t : named(els, "text")) texts.push_back(t->text);
  EXPECT_NE(std::find(texts.begin(), texts.end(), "0.001"), texts.end());
  EXPECT_NE(std::find(texts.begin(), texts.end(), "1"), texts.end());
}

TEST(Svg, LabelsAreEscapedAndSinglePointsAndConstantsWork) {
  LinePlotOptions o;
  o.title = "<loss> & \"more\"";
  const auto els = parse_ok(line_plot_svg({3.0}, o));
  EXPECT_EQ(points_of(*named(els, "polyline").at(0)).size(), 1u);
  bool found = false;
  for (const Element* t : named(els, "text")) found |= t->text == o.title;
  EXPECT_TRUE(found);
  EXPECT_EQ(points_of(*named(parse_ok(line_plot_svg({2.0, 2.0, 2.0})), "polyline").at(0)).size(),
            3u);
}

TEST(Svg, BadInputThrowsAndWritesNothing) {
  EXPECT_THROW(line_plot_svg({}), Error);
  EXPECT_THROW(line_plot_svg({NAN, INFINITY}), Error);
  LinePlotOptions o;
  o.x = {1, 2};
  EXPECT_THROW(line_plot_svg({1, 2, 3}, o), Error);
  const std::string path = "/nonexistent-dir-for-convkit/plot.svg";
  EXPECT_THROW(save_line_plot_svg(path, {1, 2}), Error);
}

TEST(Svg, SaveWritesTheSameText) {
  const char* env = std::getenv("CONVKIT_TEST_TMP");
#ifdef CONVKIT_TEST_TMP
  const std::string dir = env ? env : CONVKIT_TEST_TMP;
#else
  const std::string dir = env ? env : "/tmp";
#endif
  ::mkdir(dir.c_str(), 0777);
  const std::string path = dir + "/svg_test_" + std::to_string(::getpid()) + ".svg";
  save_line_plot_svg(path, {3, 2, 1});
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), line_plot_svg({3, 2, 1}));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace convkit
