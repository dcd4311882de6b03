// An Orva function: orvad calls handler(event, context) once per HTTP request.
//
// Try it:  orva invoke NAME --path '/?name=orva'   or   orva invoke NAME --data '{"name": "orva"}'

exports.handler = async (event, context) => {
  let name = event.query.name; // /?name=orva
  if (name === undefined && event.body) { // or a JSON body {"name": "orva"}
    try {
      name = JSON.parse(event.body).name;
    } catch (err) {
      // not JSON: keep the default
    }
  }
  name = name || 'world';
  console.log(`saying hello to ${name}`); // what a handler prints shows in `orva logs NAME`
  return { hello: name }; // an object answers 200 application/json
};
