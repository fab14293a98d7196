#include "infer/model_manifest.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file_util.h"
#include "core/json_parse.h"
#include "core/json_text.h"

namespace lipsync::infer {

nlohmann::json ModelManifest::to_json() const {
  nlohmann::json j{{"name", name},
                   {"family", family},
                   {"kind", kind},
                   {"width", width},
                   {"seed", seed},
                   {"generator_parameters", generator_parameters},
                   {"encoder_parameters", encoder_parameters}};
  if (!sources.empty()) {
    nlohmann::json list = nlohmann::json::array();
    for (const ModelSource& s : sources) {
      list.push_back(
          {{"role", s.role}, {"file", s.file}, {"sha256", s.sha256}, {"bytes", s.bytes}});
    }
    j["sources"] = std::move(list);
  }
  if (!importer.empty()) j["importer"] = importer;
  if (!precision.empty()) {
    j["precision"] = precision;
    j["calibration"] = calibration;
    j["calibration_frames"] = calibration_frames;
    j["calibration_audio"] = calibration_audio;
    if (!concat_scales.empty()) j["concat_scales"] = concat_scales;
    if (weight_bits != 0) j["weight_bits"] = weight_bits;
    if (float_convs != 0) j["float_convs"] = float_convs;
  }
  return j;
}

ModelManifest ModelManifest::load(const std::filesystem::path& path) {
  const std::string where = "model manifest " + path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error::not_found(where + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json j = core::parse_json(text.str(), where);
  if (!j.is_object()) throw Error::invalid_input(where + ": expected a JSON object");
  ModelManifest m;
  for (const auto& [key, value] : j.items()) {
    auto bad = [&](const char* expected) {
      return Error::invalid_input(where + ": key '" + key + "' is " + core::json_text(value) +
                                  "; expected " + expected);
    };
    if (key == "name" || key == "family" || key == "kind") {
      if (!value.is_string()) throw bad("a string");
      (key == "name" ? m.name : key == "family" ? m.family : m.kind) = value.get<std::string>();
    } else if (key == "width") {
      if (!value.is_number() || value.get<double>() <= 0) throw bad("a positive number");
      m.width = value.get<double>();
    } else if (key == "seed") {
      if (!value.is_number_unsigned()) throw bad("a non-negative integer");
      m.seed = value.get<std::uint64_t>();
    } else if (key == "generator_parameters" || key == "encoder_parameters") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 0) {
        throw bad("a non-negative integer");
      }
      (key == "generator_parameters" ? m.generator_parameters : m.encoder_parameters) =
          value.get<std::int64_t>();
    } else if (key == "precision" || key == "calibration" || key == "concat_scales") {
      if (!value.is_string()) throw bad("a string");
      (key == "precision"     ? m.precision
       : key == "calibration" ? m.calibration
                              : m.concat_scales) = value.get<std::string>();
    } else if (key == "calibration_frames") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 0) {
        throw bad("a non-negative integer");
      }
      m.calibration_frames = value.get<int>();
    } else if (key == "weight_bits") {
      if (!value.is_number_integer() ||
          (value.get<std::int64_t>() != 7 && value.get<std::int64_t>() != 8)) {
        throw bad("7 or 8");
      }
      m.weight_bits = value.get<int>();
    } else if (key == "float_convs") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 0 ||
          value.get<std::int64_t>() > 1000) {
        throw bad("an integer from 0 to 1000");
      }
      m.float_convs = value.get<int>();
    } else if (key == "calibration_audio") {
      if (!value.is_array()) throw bad("a list of file names");
      for (const auto& item : value) {
        if (!item.is_string()) throw bad("a list of file names");
        m.calibration_audio.push_back(item.get<std::string>());
      }
    } else if (key == "importer") {
      if (!value.is_string()) throw bad("a string");
      m.importer = value.get<std::string>();
    } else if (key == "sources") {
      if (!value.is_array()) throw bad("a list of {role, file, sha256, bytes}");
      for (const auto& item : value) {
        if (!item.is_object() || !item.value("role", nlohmann::json()).is_string() ||
            !item.value("file", nlohmann::json()).is_string() ||
            !item.value("sha256", nlohmann::json()).is_string() ||
            !item.value("bytes", nlohmann::json()).is_number_unsigned() || item.size() != 4) {
          throw bad("a list of {role, file, sha256, bytes}");
        }
        m.sources.push_back({item["role"].get<std::string>(), item["file"].get<std::string>(),
                             item["sha256"].get<std::string>(),
                             item["bytes"].get<std::uint64_t>()});
      }
    } else {
      throw Error::invalid_input(
          where + ": unknown key '" + key +
          "' (known: name, family, kind, width, seed, "
          "generator_parameters, encoder_parameters, sources, importer, precision, "
          "calibration, calibration_frames, calibration_audio, concat_scales, weight_bits, "
          "float_convs)");
    }
  }
  if (m.family != "synctalk_2d") {
    throw Error::invalid_input(where + ": family '" + m.family +
                               "' is not supported; expected synctalk_2d");
  }
  return m;
}

void ModelManifest::save(const std::filesystem::path& path) const {
  core::write_file_atomically(path, core::json_text(to_json(), 2) + "\n");
}

}  // namespace lipsync::infer
