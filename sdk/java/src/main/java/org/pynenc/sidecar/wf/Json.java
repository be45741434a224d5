package org.pynenc.sidecar.wf;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import java.lang.reflect.Type;

/** The JSON codec of the helper (Gson): nulls kept, no HTML escaping, non-ASCII as UTF-8. */
public final class Json {
  public static final Gson GSON = new GsonBuilder().serializeNulls().disableHtmlEscaping().create();

  private Json() {}

  /** JSON text of a value (a JsonElement is written as it is, numbers keep their text). */
  public static String write(Object value) {
    return GSON.toJson(value);
  }

  /** Decodes JSON text into a type (JsonElement.class keeps the tree and its number text). */
  public static <T> T read(String json, Type type) {
    return GSON.fromJson(json, type);
  }

  /** Parses JSON text into a tree. */
  public static JsonElement tree(String json) {
    return JsonParser.parseString(json);
  }
}
