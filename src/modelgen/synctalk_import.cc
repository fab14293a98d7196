#include "modelgen/synctalk_import.h"

#include <openssl/evp.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "core/file_util.h"
#include "infer/models.h"
#include "modelgen/synctalk_net.h"
#include "modelgen/torch_checkpoint.h"

#ifndef LIPSYNC_VERSION
#define LIPSYNC_VERSION "unknown"
#endif

namespace lipsync::modelgen {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kListedPerKind = 12;  // problems listed by name, per kind
constexpr int kUpstreamBaseChannels = 32;   // ch[0] of upstream's ch = [32, 64, 128, 256, 512]

// Weights taken from a state dict by module path, every problem collected (not just the first)
// so one error can name them all.
class CheckpointWeights : public WeightSource {
 public:
  // Borrows sd, which must outlive this.
  CheckpointWeights(const TorchStateDict& sd, std::string where)
      : sd_(sd), where_(std::move(where)) {
    for (const auto& [key, tensor] : sd.entries) index_.emplace(key, &tensor);
  }

  void conv(const std::string& module, const ConvSpec& c, std::vector<double>& w,
            std::vector<double>& bias) override {
    w = take(module + ".weight", {c.cout, c.cin / c.groups, c.kernel, c.kernel});
    bias = c.torch_bias ? take(module + ".bias", {c.cout}) : std::vector<double>(c.cout, 0.0);
  }

  BatchNormParams batch_norm(const std::string& module, int channels) override {
    BatchNormParams bn;
    bn.gamma = take(module + ".weight", {channels});
    bn.beta = take(module + ".bias", {channels});
    bn.mean = take(module + ".running_mean", {channels});
    bn.var = take(module + ".running_var", {channels});
    used_.insert(module + ".num_batches_tracked");  // a training counter; optional
    for (int i = 0; i < channels; ++i) {
      if (bn.var[i] < 0) {
        std::ostringstream s;
        s << module << ".running_var[" << i << "] = " << bn.var[i] << " is negative";
        values_.push_back(s.str());
        bn.var[i] = 1;
        break;
      }
    }
    return bn;
  }

  // Throws one error naming every problem; `model` says what the checkpoint should hold.
  void finish(const std::string& model) const {
    std::vector<std::string> unexpected;
    for (const auto& entry : sd_.entries) {
      if (!used_.contains(entry.first)) unexpected.push_back(entry.first);
    }
    if (missing_.empty() && unexpected.empty() && shapes_.empty() && values_.empty()) return;
    std::ostringstream s;
    s << where_ << ": does not match " << model << ":";
    list(s, "missing keys", missing_, ", ");
    list(s, "unexpected keys", unexpected, ", ");
    list(s, "shape mismatches", shapes_, "; ");
    list(s, "bad values", values_, "; ");
    throw Error::invalid_input(s.str());
  }

 private:
  std::vector<double> take(const std::string& key, const std::vector<std::int64_t>& shape) {
    used_.insert(key);
    std::size_t count = 1;
    for (std::int64_t d : shape) count *= static_cast<std::size_t>(d);
    const auto it = index_.find(key);
    if (it == index_.end()) {
      missing_.push_back(key);
      return std::vector<double>(count, 0.0);
    }
    const TorchTensor& t = *it->second;
    if (t.shape != shape) {
      shapes_.push_back(key + " is " + shape_string(t.shape) +
                        " in the checkpoint, the model "
                        "expects " +
                        shape_string(shape));
      return std::vector<double>(count, 0.0);
    }
    if (t.dtype.starts_with("int")) {
      values_.push_back(key + " is " + t.dtype + ", not floating point");
      return std::vector<double>(count, 0.0);
    }
    for (std::size_t i = 0; i < t.values.size(); ++i) {
      if (!std::isfinite(t.values[i])) {
        values_.push_back(key + " holds " + (std::isnan(t.values[i]) ? "NaN" : "Inf") +
                          " (element " + std::to_string(i) + ")");
        return std::vector<double>(count, 0.0);
      }
    }
    return t.values;
  }

  static void list(std::ostringstream& s, const char* kind, const std::vector<std::string>& items,
                   const char* separator) {
    if (items.empty()) return;
    s << "\n  " << kind << " (" << items.size() << "): ";
    for (std::size_t i = 0; i < items.size() && i < kListedPerKind; ++i) {
      s << (i > 0 ? separator : "") << items[i];
    }
    if (items.size() > kListedPerKind) s << " ... and " << items.size() - kListedPerKind << " more";
  }

  const TorchStateDict& sd_;
  std::string where_;
  std::unordered_map<std::string, const TorchTensor*> index_;
  std::set<std::string> used_;
  std::vector<std::string> missing_, shapes_, values_;
};

bool any_key_starts_with(const TorchStateDict& sd, const std::string& prefix) {
  for (const auto& e : sd.entries) {
    if (e.first.starts_with(prefix)) return true;
  }
  return false;
}

// The channel width the checkpoint was trained at, read from one layer's shape (the strict
// check then holds every other layer to it).
double width_of(const TorchStateDict& sd, const std::string& key) {
  const TorchTensor* t = sd.find(key);
  if (t == nullptr || t->shape.size() != 4 || t->shape[0] < 2 || t->shape[0] > 4 * 32) return 1.0;
  return static_cast<double>(t->shape[0]) / kUpstreamBaseChannels;
}

std::string sha256_hex(const fs::path& path, std::uint64_t& bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error::invalid_input(path.string() + ": cannot open");
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buffer(1 << 20);
  bytes = 0;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    EVP_DigestUpdate(ctx.get(), buffer.data(), n);
    bytes += n;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

}  // namespace

infer::ModelSource model_source(const std::string& role, const fs::path& path) {
  infer::ModelSource s;
  s.role = role;
  s.file = path.filename().string();
  s.sha256 = sha256_hex(path, s.bytes);
  return s;
}

ImportedModels import_synctalk_models(const fs::path& unet_path, const fs::path& encoder_path,
                                      const fs::path& out, std::string name) {
  const std::string unet_where = unet_path.string();
  const std::string encoder_where = encoder_path.string();
  const TorchStateDict unet = read_torch_checkpoint(unet_path);
  TorchStateDict encoder = read_torch_checkpoint(encoder_path);

  // The two files the wrong way round is the likeliest mistake; say so, not 600 key errors.
  if (!any_key_starts_with(unet, "audio_model.") && any_key_starts_with(encoder, "audio_model.")) {
    throw Error::invalid_input(unet_where + " holds an audio encoder and " + encoder_where +
                               " a U-Net: are --unet and --audio-encoder swapped?");
  }
  if (any_key_starts_with(encoder, "audio_model.")) {
    throw Error::invalid_input(encoder_where +
                               ": a SyncTalk_2D U-Net checkpoint, not the audio encoder "
                               "(model/checkpoints/audio_visual_encoder.pth upstream)");
  }
  // The whole AudioEncoder module saved, not its inner nn.Sequential: the same keys, prefixed.
  const bool prefixed = std::all_of(encoder.entries.begin(), encoder.entries.end(),
                                    [](auto& e) { return e.first.starts_with("audio_encoder."); });
  if (prefixed) {
    for (auto& e : encoder.entries) e.first.erase(0, std::string("audio_encoder.").size());
  }

  // The other audio modes. 'wenet' feeds 256 channels of WeNet features into an
  // InvertedResidual(256, 256); 'hubert' has the 'ave' shapes (its conv3 only strides).
  if (const TorchTensor* t = unet.find("audio_model.conv1.conv.0.weight");
      t != nullptr && t->shape.size() == 4 && t->shape[1] != 32) {
    const std::string mode = t->shape[1] == 256 ? "a 'wenet'" : "another";
    throw Error::invalid_input(
        unet_where + ": " + mode + " audio-mode SyncTalk_2D checkpoint (audio_model.conv1 takes " +
        std::to_string(t->shape[1]) +
        " channels, 'ave' takes 32); lipsync runs only the 'ave' mode (train with --asr ave)");
  }

  ImportedModels result;
  result.generator_width = width_of(unet, "inc.inconv.0.conv.6.weight");
  const double encoder_width = width_of(encoder, "0.conv_block.0.weight");
  CheckpointWeights unet_weights(unet, unet_where);
  const GeneratedModel generator = build_generator(unet_weights, result.generator_width);
  unet_weights.finish("SyncTalk_2D's 328-pixel U-Net, Model(6, 'ave') of unet_328.py");
  CheckpointWeights encoder_weights(encoder, encoder_where);
  const GeneratedModel audio = build_audio_encoder(encoder_weights, encoder_width);
  encoder_weights.finish("SyncTalk_2D's audio encoder (AudioEncoder of utils.py)");

  std::vector<std::string> notes;
  if (!unet.note.empty()) notes.push_back(unet_where + ": " + unet.note);
  if (!encoder.note.empty()) notes.push_back(encoder_where + ": " + encoder.note);
  if (prefixed) notes.push_back(encoder_where + ": 'audio_encoder.' prefix removed");
  for (std::size_t i = 0; i < notes.size(); ++i) result.notes += (i ? "; " : "") + notes[i];

  infer::ModelManifest& m = result.manifest;
  fs::path folder = fs::absolute(out).lexically_normal();
  if (folder.filename().empty()) folder = folder.parent_path();  // "dir/"
  m.name = name.empty() ? folder.filename().string() : name;
  m.kind = "trained";
  m.width = result.generator_width;
  m.generator_parameters = generator.parameters;
  m.encoder_parameters = audio.parameters;
  m.sources = {model_source("unet", unet_path), model_source("audio_encoder", encoder_path)};
  m.importer = std::string("lipsync ") + LIPSYNC_VERSION + " models import v" +
               std::to_string(kImporterVersion);

  core::StagingFolder staging(out, "models output");
  core::write_file_atomically(staging.dir() / infer::kEncoderFileName, audio.onnx);
  core::write_file_atomically(staging.dir() / infer::kGeneratorFileName, generator.onnx);
  m.save(staging.dir() / infer::kManifestFileName);
  staging.commit();
  return result;
}

}  // namespace lipsync::modelgen
